//! The few MessagePack forms the Datadog agent's `/v0.4/traces` body needs,
//! written by hand rather than pulling in a crate. Envoy's tracer (dd-trace-cpp)
//! always uses the widest form of each (`array 32`, `map 32`, `str 32`, `uint
//! 64`, `int 64`, `float 64`), and so does this, so the bytes compare with
//! Envoy's one for one.

/// Lengths over 4 GiB cannot be written; nothing Courier sends comes close
/// (header values and tags are bounded far below), so they are cut at the limit.
fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

pub fn array(out: &mut Vec<u8>, len: usize) {
    out.push(0xdd);
    out.extend_from_slice(&len32(len));
}

pub fn map(out: &mut Vec<u8>, len: usize) {
    out.push(0xdf);
    out.extend_from_slice(&len32(len));
}

pub fn str(out: &mut Vec<u8>, s: &str) {
    out.push(0xdb);
    out.extend_from_slice(&len32(s.len()));
    out.extend_from_slice(s.as_bytes());
}

pub fn uint(out: &mut Vec<u8>, v: u64) {
    out.push(0xcf);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn int(out: &mut Vec<u8>, v: i64) {
    out.push(0xd3);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn float(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes Envoy 1.40 sent for `{"service": "envoy-demo"}`-like pieces.
    #[test]
    fn widest_forms() {
        let mut out = Vec::new();
        array(&mut out, 1);
        map(&mut out, 2);
        str(&mut out, "error");
        int(&mut out, 1);
        str(&mut out, "x");
        uint(&mut out, 0x7b);
        float(&mut out, 1.0);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "dd00000001df00000002db000000056572726f72d30000000000000001db0000000178cf000000000000007bcb3ff0000000000000"
        );
    }
}
