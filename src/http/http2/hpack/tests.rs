//! HPACK against RFC 7541's examples (Appendix C), h2spec's HPACK cases, the
//! HPACK bomb, and encoder → decoder round trips over generated lists.

use bytes::{Bytes, BytesMut};

use super::table::STATIC_TABLE;
use super::*;

const UNLIMITED: HeaderListLimit = HeaderListLimit { max_bytes: usize::MAX, max_count: usize::MAX };

fn hex(s: &str) -> Bytes {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("0"), 16).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into()
}

fn pairs(fields: &[Field]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (String::from_utf8_lossy(&f.name).into_owned(), String::from_utf8_lossy(&f.value).into_owned()))
        .collect()
}

fn list(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn fields(list: &[(&str, &str)]) -> Vec<Field> {
    list.iter().map(|(n, v)| Field::new(n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
}

/// The dynamic table's entries, newest first, and its size.
fn table_of(t: &table::DynamicTable) -> (Vec<(String, String)>, usize) {
    let entries = t
        .iter()
        .map(|e| (String::from_utf8_lossy(&e.name).into_owned(), String::from_utf8_lossy(&e.value).into_owned()))
        .collect();
    (entries, t.size())
}

fn decode_ok(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
    match d.decode(&hex(block), UNLIMITED) {
        Ok(f) => pairs(&f),
        Err(e) => panic!("block {block} did not decode: {e}"),
    }
}

fn compression_error(d: &mut Decoder, block: &[u8]) -> CompressionError {
    match d.decode(&Bytes::copy_from_slice(block), UNLIMITED) {
        Err(DecodeError::Compression(e)) => e,
        other => panic!("expected a COMPRESSION_ERROR, got {other:?}"),
    }
}

#[test]
fn rfc7541_c2_field_representations() {
    let mut d = Decoder::default();
    let got = decode_ok(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(got, list(&[("custom-key", "custom-header")]));
    assert_eq!(table_of(d.table()), (list(&[("custom-key", "custom-header")]), 55));

    let mut d = Decoder::default();
    assert_eq!(decode_ok(&mut d, "040c 2f73 616d 706c 652f 7061 7468"), list(&[(":path", "/sample/path")]));
    assert!(d.table().is_empty());

    let mut d = Decoder::default();
    let got = d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), UNLIMITED);
    assert_eq!(got, Ok(vec![Field { name: "password".into(), value: "secret".into(), sensitive: true }]));
    assert!(d.table().is_empty());

    let mut d = Decoder::default();
    assert_eq!(decode_ok(&mut d, "82"), list(&[(":method", "GET")]));
    assert!(d.table().is_empty());
}

const C3: [&str; 3] = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];
const C4: [&str; 3] = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];

fn c3_requests() -> [Vec<(&'static str, &'static str)>; 3] {
    [
        vec![(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
        vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ],
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ],
    ]
}

fn c3_tables() -> [(Vec<(String, String)>, usize); 3] {
    [
        (list(&[(":authority", "www.example.com")]), 57),
        (list(&[("cache-control", "no-cache"), (":authority", "www.example.com")]), 110),
        (
            list(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")]),
            164,
        ),
    ]
}

#[test]
fn rfc7541_c3_and_c4_requests_decode() {
    for blocks in [C3, C4] {
        let mut d = Decoder::default();
        for ((block, request), table) in blocks.iter().zip(c3_requests()).zip(c3_tables()) {
            assert_eq!(decode_ok(&mut d, block), list(&request));
            assert_eq!(table_of(d.table()), table);
        }
    }
}

#[test]
fn rfc7541_c3_and_c4_requests_encode_byte_exact() {
    for (blocks, mut e) in [(C3, Encoder::without_huffman()), (C4, Encoder::new())] {
        for (block, request) in blocks.iter().zip(c3_requests()) {
            let mut out = BytesMut::new();
            e.encode(&fields(&request), &mut out);
            assert_eq!(out.freeze(), hex(block), "{request:?}");
        }
    }
}

const C5: [&str; 3] = [
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
     6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
     3d31",
];
const C6: [&str; 3] = [
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07",
];

fn c5_responses() -> [Vec<(&'static str, &'static str)>; 3] {
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let location = "https://www.example.com";
    [
        vec![(":status", "302"), ("cache-control", "private"), ("date", date1), ("location", location)],
        vec![(":status", "307"), ("cache-control", "private"), ("date", date1), ("location", location)],
        vec![
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", location),
            ("content-encoding", "gzip"),
            ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
        ],
    ]
}

#[test]
fn rfc7541_c5_and_c6_responses_decode_with_eviction() {
    let tables = [
        (
            list(&[
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
                (":status", "302"),
            ]),
            222,
        ),
        (
            list(&[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
            ]),
            222,
        ),
        (
            list(&[
                ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
                ("content-encoding", "gzip"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ]),
            215,
        ),
    ];
    for blocks in [C5, C6] {
        let mut d = Decoder::new(256);
        for ((block, response), table) in blocks.iter().zip(c5_responses()).zip(tables.clone()) {
            assert_eq!(decode_ok(&mut d, block), list(&response));
            assert_eq!(table_of(d.table()), table);
        }
    }
}

/// Appendix C.5 indexes `location`, which Courier's encoder (nghttp2's choice)
/// does not: the bytes differ, the lists survive the round trip.
#[test]
fn rfc7541_c5_responses_round_trip_through_the_encoder() {
    let mut e = Encoder::new();
    e.set_peer_table_size(256);
    let mut d = Decoder::new(4096);
    d.set_table_size_limit(256);
    for response in c5_responses() {
        let mut out = BytesMut::new();
        e.encode(&fields(&response), &mut out);
        assert_eq!(d.decode(&out.freeze(), UNLIMITED).map(|f| pairs(&f)), Ok(list(&response)));
        assert_eq!(table_of(d.table()), table_of(e.table()));
    }
}

// h2spec's HPACK cases, each a COMPRESSION_ERROR (tests/h2conformance/expected_failures.txt).

#[test]
fn h2spec_hpack_2_3_3_1_index_past_the_tables() {
    assert_eq!(compression_error(&mut Decoder::default(), &[0xbe]), CompressionError::InvalidIndex(62));
    let mut d = Decoder::default();
    decode_ok(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(compression_error(&mut d, &[0xbf]), CompressionError::InvalidIndex(63));
    // A literal's indexed name is checked as well.
    assert_eq!(
        compression_error(&mut Decoder::default(), &[0x7f, 0x00, 0x01, b'x']),
        CompressionError::InvalidIndex(63)
    );
}

#[test]
fn h2spec_hpack_4_2_1_table_size_update_above_the_limit() {
    // 4097 = 31 + 98 + 31 * 128.
    assert_eq!(
        compression_error(&mut Decoder::default(), &[0x3f, 0xe2, 0x1f, 0x82]),
        CompressionError::TableSizeAboveLimit { size: 4097, limit: 4096 }
    );
    // 4096 itself is fine.
    assert_eq!(decode_ok(&mut Decoder::default(), "3fe1 1f82"), list(&[(":method", "GET")]));
}

#[test]
fn h2spec_hpack_4_2_2_table_size_update_after_a_field() {
    assert_eq!(compression_error(&mut Decoder::default(), &[0x82, 0x20]), CompressionError::TableSizeUpdateNotAtStart);
}

#[test]
fn h2spec_hpack_5_2_huffman_errors() {
    // A literal without indexing, name "a", value Huffman-coded.
    let with_value = |coded: &[u8]| [&[0x00, 0x01, b'a', 0x80 | coded.len() as u8][..], coded].concat();
    let cases: [(&[u8], huffman::HuffmanError); 3] = [
        (&[0xff, 0xff, 0xff, 0xff], huffman::HuffmanError::Eos), // 5.2/1
        (&[0x1f, 0xff], huffman::HuffmanError::PaddingTooLong),  // 5.2/2
        (&[0x18], huffman::HuffmanError::PaddingNotOnes),        // 5.2/3
    ];
    for (coded, err) in cases {
        assert_eq!(compression_error(&mut Decoder::default(), &with_value(coded)), CompressionError::Huffman(err));
    }
}

#[test]
fn h2spec_hpack_6_1_1_index_zero() {
    assert_eq!(compression_error(&mut Decoder::default(), &[0x80]), CompressionError::InvalidIndex(0));
}

#[test]
fn truncated_blocks_are_compression_errors() {
    let whole = hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65");
    for cut in [5, 6, 10, whole.len() - 1] {
        let mut d = Decoder::default();
        decode_ok(&mut d, C3[0]);
        decode_ok(&mut d, C3[1]);
        assert!(matches!(d.decode(&whole.slice(..cut), UNLIMITED), Err(DecodeError::Compression(_))), "cut at {cut}");
    }
}

#[test]
fn a_lowered_table_size_needs_an_update_at_the_next_block_start() {
    let mut d = Decoder::default();
    decode_ok(&mut d, C3[0]);
    d.set_table_size_limit(0);
    d.set_table_size_limit(100);
    // Without the update: an error.
    let mut missing = Decoder::default();
    decode_ok(&mut missing, C3[0]);
    missing.set_table_size_limit(50);
    assert_eq!(compression_error(&mut missing, &[0x82]), CompressionError::TableSizeUpdateMissing { limit: 50 });
    // The smallest limit since the last block (0) first, then up to the new one.
    assert_eq!(
        compression_error(&mut Decoder::new(4096), &[0x3f, 0xe2, 0x1f]),
        CompressionError::TableSizeAboveLimit { size: 4097, limit: 4096 }
    );
    let mut wrong = Decoder::default();
    decode_ok(&mut wrong, C3[0]);
    wrong.set_table_size_limit(0);
    wrong.set_table_size_limit(100);
    assert_eq!(
        compression_error(&mut wrong, &[0x3f, 0x2a, 0x82]),
        CompressionError::TableSizeAboveLimit { size: 73, limit: 0 }
    );
    assert_eq!(decode_ok(&mut d, "20 3f45 82"), list(&[(":method", "GET")]));
    assert_eq!(d.table().max_size(), 100);
    assert!(d.table().is_empty());
    // A raised limit needs no update.
    let mut raised = Decoder::default();
    raised.set_table_size_limit(8192);
    assert_eq!(decode_ok(&mut raised, "82"), list(&[(":method", "GET")]));
}

/// An entry of 4 KiB referenced 10,000 times: the list stops at the limit, the
/// block is still decoded to its end (an insertion after the limit is kept),
/// and the next block decodes against the same table as the peer's.
#[test]
fn hpack_bomb_stops_at_the_limit_and_keeps_the_table_in_step() {
    let mut block = vec![0x40, 0x06];
    block.extend_from_slice(b"x-bomb");
    block.extend_from_slice(&[0x7f, 0x81, 0x1e]); // value length 127 + 3841 = 3968
    block.extend(std::iter::repeat_n(b'a', 3968));
    block.extend(std::iter::repeat_n(0xbe, 10_000));
    // Inserted after the limit was crossed: x-late: 1.
    block.extend_from_slice(&[0x40, 0x06]);
    block.extend_from_slice(b"x-late");
    block.extend_from_slice(&[0x01, b'1']);
    let limit = HeaderListLimit { max_bytes: 60 * 1024, max_count: 100_000 };
    let mut d = Decoder::default();
    assert_eq!(d.decode(&Bytes::from(block.clone()), limit), Err(DecodeError::ListOverLimit(ListOverLimit::Bytes)));
    let (entries, _) = table_of(d.table());
    assert_eq!(entries.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["x-late", "x-bomb"]);
    // The next block: x-late by index, then a new insertion and references to
    // it and to x-late, now one further down.
    let next = d.decode(&hex("be 4006 782d 6e65 7874 0132 be bf"), HeaderListLimit::ENVOY_DEFAULT);
    assert_eq!(
        next.map(|f| pairs(&f)),
        Ok(list(&[("x-late", "1"), ("x-next", "2"), ("x-next", "2"), ("x-late", "1")]))
    );

    // The same bomb against the field count.
    let mut d = Decoder::default();
    let err = d.decode(&Bytes::from(block), HeaderListLimit { max_bytes: usize::MAX, max_count: 100 });
    assert_eq!(err, Err(DecodeError::ListOverLimit(ListOverLimit::Count)));
    assert_eq!(table_of(d.table()).0.len(), 2);
}

#[test]
fn the_limits_count_every_field_and_every_byte() {
    let block = hex("8286 84 4006 636f 6f6b 6965 0161 4006 636f 6f6b 6965 0162");
    let limit = |max_bytes, max_count| HeaderListLimit { max_bytes, max_count };
    // 5 fields (two cookie crumbs); bytes: 7+3 + 7+4 + 5+1 + 6+1 + 6+1 = 41.
    assert!(Decoder::default().decode(&block, limit(41, 5)).is_ok());
    assert_eq!(Decoder::default().decode(&block, limit(41, 4)), Err(DecodeError::ListOverLimit(ListOverLimit::Count)));
    assert_eq!(Decoder::default().decode(&block, limit(40, 5)), Err(DecodeError::ListOverLimit(ListOverLimit::Bytes)));
}

/// A typical h2load request, second on its connection (the first put
/// `:authority` and `user-agent` in the table): every field's name and value
/// are static memory, the table's own, or (a raw literal) the block's: nothing
/// is allocated per field.
#[test]
fn a_typical_request_allocates_nothing_per_field() {
    let request = [
        (":method", "GET"),
        (":path", "/bench"),
        (":scheme", "http"),
        (":authority", "127.0.0.1:10000"),
        ("user-agent", "h2load nghttp2/1.59.0"),
    ];
    let mut e = Encoder::without_huffman();
    let mut d = Decoder::default();
    for round in 0..2 {
        let mut out = BytesMut::new();
        e.encode(&fields(&request), &mut out);
        let block = out.freeze();
        let decoded = match d.decode(&block, HeaderListLimit::ENVOY_DEFAULT) {
            Ok(f) => f,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(pairs(&decoded), list(&request));
        if round == 0 {
            continue;
        }
        let in_block = |b: &Bytes| block.as_ptr_range().contains(&b.as_ptr());
        let is_static = |b: &Bytes| {
            STATIC_TABLE.iter().any(|(n, v)| b.as_ptr() == n.as_ptr() || (!v.is_empty() && b.as_ptr() == v.as_ptr()))
        };
        let in_table =
            |b: &Bytes| d.table().iter().any(|en| b.as_ptr() == en.name.as_ptr() || b.as_ptr() == en.value.as_ptr());
        for f in &decoded {
            for part in [&f.name, &f.value] {
                assert!(in_block(part) || is_static(part) || in_table(part), "{f:?} was copied");
            }
        }
        // `:path` (never indexed by the encoder) is a raw literal: the block's own bytes.
        assert!(in_block(&decoded[1].value));
    }
}

/// A small deterministic generator (xorshift), for the round trips.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generated_list(rng: &mut Rng) -> Vec<Field> {
    const NAMES: [&str; 12] = [
        ":path",
        ":authority",
        "accept",
        "cookie",
        "authorization",
        "content-length",
        "x-request-id",
        "user-agent",
        "x-custom-header",
        "set-cookie",
        "cache-control",
        "date",
    ];
    const VALUES: [&str; 6] = ["", "/", "gzip, deflate", "no-cache", "a=b", "x"];
    let n = 1 + rng.below(20);
    (0..n)
        .map(|_| {
            let name: Bytes = match rng.below(8) {
                0 => (0..1 + rng.below(12)).map(|_| b'a' + rng.below(26) as u8).collect::<Vec<u8>>().into(),
                1 => Bytes::from_static(STATIC_TABLE[rng.below(STATIC_TABLE.len())].0.as_bytes()),
                _ => Bytes::from_static(NAMES[rng.below(NAMES.len())].as_bytes()),
            };
            let value: Bytes = match rng.below(6) {
                0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect::<Vec<u8>>().into(),
                1 => (0..rng.below(40)).map(|_| b' ' + rng.below(95) as u8).collect::<Vec<u8>>().into(),
                _ => Bytes::from_static(VALUES[rng.below(VALUES.len())].as_bytes()),
            };
            Field { name, value, sensitive: rng.below(10) == 0 }
        })
        .collect()
}

#[test]
fn generated_lists_round_trip_through_one_encoder_and_decoder() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut e = Encoder::new();
    let mut d = Decoder::default();
    for n in 0..2000 {
        if n % 97 == 0 {
            // The peer (this decoder's side) changes SETTINGS_HEADER_TABLE_SIZE,
            // and the encoder's side has it acknowledged before its next block.
            let size = [0, 64, 256, 4096, 8192][rng.below(5)];
            d.set_table_size_limit(size);
            e.set_peer_table_size(size);
        }
        let fields = generated_list(&mut rng);
        let mut out = BytesMut::new();
        e.encode(&fields, &mut out);
        let decoded = d.decode(&out.freeze(), UNLIMITED);
        let expected: Vec<_> = fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect();
        assert_eq!(
            decoded.map(|l| l.into_iter().map(|f| (f.name, f.value)).collect::<Vec<_>>()),
            Ok(expected),
            "list {n}"
        );
        assert_eq!(table_of(d.table()), table_of(e.table()), "list {n}");
    }
}

#[test]
fn sensitive_fields_stay_out_of_the_tables() {
    let mut e = Encoder::new();
    let list = [
        Field { name: "x-secret".into(), value: "s3cr3t".into(), sensitive: true },
        Field::new("authorization", "Bearer abc"),
        Field::new("cookie", "short=1"),
        Field::new("content-length", "42"),
        Field::new("x-kept", "yes"),
    ];
    let mut out = BytesMut::new();
    e.encode(&list, &mut out);
    let mut d = Decoder::default();
    let decoded = d.decode(&out.freeze(), UNLIMITED).unwrap_or_default();
    assert_eq!(decoded.iter().map(|f| f.sensitive).collect::<Vec<_>>(), [true, true, true, false, false]);
    assert_eq!(table_of(d.table()).0, list_of_kept());
}

fn list_of_kept() -> Vec<(String, String)> {
    list(&[("x-kept", "yes")])
}

#[test]
fn the_fuzz_target_takes_the_rfc_examples() {
    let mut data = vec![0x10];
    for block in C3.iter().chain(&C4).chain(&C5) {
        let b = hex(block);
        data.extend_from_slice(&(b.len() as u16).to_be_bytes());
        data.extend_from_slice(&b);
    }
    fuzz(&data);
}

#[test]
fn the_encoder_signals_the_peers_table_size_changes() {
    let mut e = Encoder::new();
    let request = fields(&c3_requests()[0]);
    let mut out = BytesMut::new();
    e.encode(&request, &mut out);
    // Above what the encoder uses (4096): nothing to signal.
    e.set_peer_table_size(65536);
    let mut out = BytesMut::new();
    e.encode(&request, &mut out);
    assert_eq!(out.first(), Some(&0x82));
    // Down to 0 and back up to 100 between two blocks: 0 first, then 100.
    e.set_peer_table_size(0);
    e.set_peer_table_size(100);
    let mut out = BytesMut::new();
    e.encode(&request, &mut out);
    assert_eq!(out[..3], [0x20, 0x3f, 0x45]);
    assert_eq!(e.table().max_size(), 100);
    // Signalled once only.
    let mut out = BytesMut::new();
    e.encode(&request, &mut out);
    assert_eq!(out.first(), Some(&0x82));
}
