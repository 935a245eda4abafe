//! A JSON Web Key Set (RFC 7517) and the signature check of a token against it.
//!
//! Keys are read as Envoy's JWT library reads them: `RSA` (`n`, `e`), `EC`
//! (`crv` P-256 or P-384, `x`, `y`), `OKP` (Ed25519 `x`) and `oct` (`k`, for
//! HMAC); a key that cannot be read is left out, and a set with none left is
//! `JwksNoValidKeys`. A token is checked with each key whose `kid` and `alg` do
//! not contradict it and whose type fits its `alg`; none such is
//! `JwksKidAlgMismatch`, none verifying is `JwtVerificationFail`. The
//! signatures are `ring`'s.
//!
//! Envoy's JSON reader takes raw control characters (a line break, a tab)
//! inside a string, and its base64url decoder skips whitespace, so a key
//! written over several lines of a YAML folded string is read; both are
//! tolerated here too, and nothing more (any other stray byte still fails).

use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::jwt::{Alg, Jwt, BASE64URL};
use super::status::Status;

/// The largest key set read (a remote one is refused past it).
pub const MAX_JWKS: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

#[derive(Debug, Clone)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point, `04 || x || y`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
    Oct {
        k: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    material: Material,
}

/// A key set with at least one usable key.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// absl's `ascii_isspace`, which Envoy's base64url decoder skips.
fn is_absl_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn field(key: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    let text = key.get(name).and_then(Value::as_str)?;
    let compact: Vec<u8> = text.bytes().filter(|b| !is_absl_space(*b)).collect();
    BASE64URL.decode(compact).ok()
}

/// `bytes` with each raw control character inside a JSON string written as a
/// `\u00XX` escape, which strict JSON requires and Envoy's reader does not.
fn escape_raw_controls(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !bytes.iter().any(|b| *b < 0x20) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string && !escaped && b < 0x20 {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            continue;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

/// An EC coordinate at its curve's width (leading zeros may have been dropped).
fn coordinate(mut bytes: Vec<u8>, width: usize) -> Option<Vec<u8>> {
    if bytes.len() > width {
        return None;
    }
    let mut padded = vec![0; width - bytes.len()];
    padded.append(&mut bytes);
    Some(padded)
}

fn read_key(key: &serde_json::Map<String, Value>) -> Option<Jwk> {
    let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_owned);
    let alg = text("alg");
    let alg_starts = |prefix: &[&str]| alg.as_deref().is_none_or(|a| prefix.iter().any(|p| a.starts_with(p)));
    let material = match key.get("kty").and_then(Value::as_str)? {
        "RSA" if alg_starts(&["RS", "PS"]) => Material::Rsa { n: field(key, "n")?, e: field(key, "e")? },
        "EC" if alg_starts(&["ES"]) => {
            let (curve, width) = match (text("crv").as_deref(), alg.as_deref()) {
                (Some("P-256") | None, Some("ES256") | None) => (Curve::P256, 32),
                (Some("P-384"), Some("ES384") | None) | (None, Some("ES384")) => (Curve::P384, 48),
                _ => return None,
            };
            let mut point = vec![4];
            point.extend(coordinate(field(key, "x")?, width)?);
            point.extend(coordinate(field(key, "y")?, width)?);
            Material::Ec { curve, point }
        }
        "OKP" if alg.as_deref().is_none_or(|a| a == "EdDSA") && text("crv").as_deref() == Some("Ed25519") => {
            let x = field(key, "x")?;
            (x.len() == 32).then_some(Material::Ed25519 { x })?
        }
        "oct" if alg_starts(&["HS"]) => Material::Oct { k: field(key, "k")? },
        _ => return None,
    };
    Some(Jwk { kid: text("kid"), alg, material })
}

impl Jwks {
    /// Reads a JWKS document.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, Status> {
        if bytes.len() > MAX_JWKS {
            return Err(Status::JwksParseError);
        }
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&escape_raw_controls(bytes)) else {
            return Err(Status::JwksParseError);
        };
        let keys = match doc.get("keys") {
            None => return Err(Status::JwksNoKeys),
            Some(Value::Array(keys)) => keys,
            Some(_) => return Err(Status::JwksBadKeys),
        };
        let keys: Vec<Jwk> = keys.iter().filter_map(Value::as_object).filter_map(read_key).collect();
        if keys.is_empty() {
            return Err(Status::JwksNoValidKeys);
        }
        Ok(Jwks { keys })
    }

    /// Checks `jwt`'s signature with the keys that may have made it.
    pub fn verify(&self, jwt: &Jwt) -> Status {
        let mut tried = false;
        for key in &self.keys {
            let kid_differs = matches!((&jwt.kid, &key.kid), (Some(a), Some(b)) if a != b);
            if kid_differs || key.alg.as_ref().is_some_and(|a| *a != jwt.alg_name) {
                continue;
            }
            let Some(ok) = check(jwt, &key.material) else { continue };
            tried = true;
            if ok {
                return Status::Ok;
            }
        }
        if tried {
            Status::JwtVerificationFail
        } else {
            Status::JwksKidAlgMismatch
        }
    }
}

/// `Some(verified)` when `material` is of a kind `jwt.alg` uses, else `None`.
fn check(jwt: &Jwt, material: &Material) -> Option<bool> {
    let message = jwt.signed.as_bytes();
    let sig = jwt.signature.as_slice();
    let ok = match (jwt.alg, material) {
        (Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512, Material::Rsa { n, e }) => {
            let params: &signature::RsaParameters = match jwt.alg {
                Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
        }
        (Alg::Es256, Material::Ec { curve: Curve::P256, point }) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).is_ok()
        }
        (Alg::Es384, Material::Ec { curve: Curve::P384, point }) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point).verify(message, sig).is_ok()
        }
        (Alg::EdDsa, Material::Ed25519 { x }) => {
            UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok()
        }
        (Alg::Hs256 | Alg::Hs384 | Alg::Hs512, Material::Oct { k }) => {
            let algorithm = match jwt.alg {
                Alg::Hs256 => ring::hmac::HMAC_SHA256,
                Alg::Hs384 => ring::hmac::HMAC_SHA384,
                _ => ring::hmac::HMAC_SHA512,
            };
            ring::hmac::verify(&ring::hmac::Key::new(algorithm, k), message, sig).is_ok()
        }
        _ => return None,
    };
    Some(ok)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    use super::*;

    /// An RS256 key and a token it signed (made once with openssl; `exp` in 2100).
    const RSA_JWKS: &str = r#"{"keys": [{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "n": "7efvthMLrkaL7xRDtx8XovoueWqIiOXrIzgyZDuBEgnAF8PeewYANzgoJEzb9Uue54Wqp0Gq4EWQezEZyETa3RyGza3qgukLrFS4NBOkcmwsx1MM6BwdJYDYL-OD588fw-3dHgLbpJt8ueIUnU-k3RvKJesABhdxkoWq68AreVbSVEs4iAEeLLNtnbqeyU5Hodtg3v6R4UiBqL-PrLFbz1CNzI7IsXMVjG31fMccxen0krvfaDYg6SZ8gq9k-vm66l5XsZyKerhaeljR5zWj3t1IrYq-njdXVMXbeecqDLDT6Jvp5D9QvKhUJevcWrs6UxrkPYl9RSsFslpzh3Qbuw", "e": "AQAB"}]}"#;
    const RSA_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjpbImNvdXJpZXIiLCJvdGhlciJdLCJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSIsInRlbmFudCI6eyJpZCI6N30sImFkbWluIjp0cnVlfQ.cuhguZepMWiBMF7HxJSkT80ZsvgT3EqMoZ6dO6hE2o2Z93DgrYTHca11rZX8PdJwSXd_910XdYvFsJkJoY-zKToZ_QiXRlIGSXAo4x33MtgmXLMbbfUrFUPdQc_saq2-w4kbs_C_cqymBPLGKdQNlyXfNhJBp-i4ZunphSx1hn788OaOz5gjRYYbt89_SXqzp4hfM66I1OkZiStwRHhWDsrf06zKam6iXjS_UR2UZl4uMEpINRcdev_h50eibLS28EcQR4AdG1HIQ3GC8REZwMjVE5ntOvHBaNuJmKBvVRz1g2pGLEFQLZZrIaXo3SfKz12ywjfZo4tFnIjjWf3A_w";

    fn b64(bytes: &[u8]) -> String {
        BASE64URL.encode(bytes)
    }

    /// A token of `header` and `payload`, signed by `sign`.
    fn token(header: &str, payload: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = sign(signed.as_bytes());
        format!("{signed}.{}", b64(&signature))
    }

    fn verify(jwks: &str, token: &str) -> Status {
        match (Jwks::parse(jwks.as_bytes()), Jwt::parse(token)) {
            (Ok(keys), Ok(jwt)) => keys.verify(&jwt),
            (Err(s), _) | (_, Err(s)) => s,
        }
    }

    #[test]
    fn rsa_good_and_tampered() {
        assert_eq!(verify(RSA_JWKS, RSA_TOKEN), Status::Ok);
        let mut tampered = RSA_TOKEN.to_string();
        let last = tampered.pop().map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
        tampered.push(last);
        assert_eq!(verify(RSA_JWKS, &tampered), Status::JwtVerificationFail);
        // Another kid, or a key for another alg: no key to try.
        assert_eq!(verify(&RSA_JWKS.replace("rsa1", "other"), RSA_TOKEN), Status::JwksKidAlgMismatch);
        assert_eq!(verify(&RSA_JWKS.replace("\"RS256\"", "\"RS384\""), RSA_TOKEN), Status::JwksKidAlgMismatch);
    }

    #[test]
    fn hmac_keys() {
        let secret = b"a secret of some thirty-two bytes";
        let jwks = format!(r#"{{"keys":[{{"kty":"oct","k":"{}"}}]}}"#, b64(secret));
        let sign = |key: &[u8]| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            move |m: &[u8]| ring::hmac::sign(&key, m).as_ref().to_vec()
        };
        let good = token(r#"{"alg":"HS256"}"#, r#"{"iss":"i"}"#, sign(secret));
        assert_eq!(verify(&jwks, &good), Status::Ok);
        let bad = token(r#"{"alg":"HS256"}"#, r#"{"iss":"i"}"#, sign(b"another"));
        assert_eq!(verify(&jwks, &bad), Status::JwtVerificationFail);
        // An RS256 token finds no RSA key in this set.
        assert_eq!(verify(&jwks, RSA_TOKEN), Status::JwksKidAlgMismatch);
    }

    #[test]
    fn ec_and_ed25519_keys() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
        let point = ec.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
            b64(&point[1..33]),
            b64(&point[33..])
        );
        let good = token(r#"{"alg":"ES256"}"#, "{}", |m| ec.sign(&rng, m).expect("sign").as_ref().to_vec());
        assert_eq!(verify(&jwks, &good), Status::Ok);
        let other = token(r#"{"alg":"ES256"}"#, r#"{"a":1}"#, |_| vec![0; 64]);
        assert_eq!(verify(&jwks, &other), Status::JwtVerificationFail);

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#, b64(ed.public_key().as_ref()));
        let good = token(r#"{"alg":"EdDSA"}"#, "{}", |m| ed.sign(m).as_ref().to_vec());
        assert_eq!(verify(&jwks, &good), Status::Ok);
        let short = token(r#"{"alg":"EdDSA"}"#, "{}", |_| vec![1; 10]);
        assert_eq!(verify(&jwks, &short), Status::JwtEd25519SignatureWrongLength);
    }

    #[test]
    fn key_written_over_lines() {
        // As Envoy reads it: raw line breaks and tabs inside a string, and
        // whitespace inside base64url, are taken.
        let k = BASE64URL.encode(b"a shared secret of some length");
        let (head, tail) = k.split_at(10);
        let jwks = format!("{{\"keys\": [{{\"kty\":\"oct\",\"k\":\"{head}\n   \t{tail}\",\n\"kid\":\"a\tb\"}}]}}");
        let set = Jwks::parse(jwks.as_bytes()).expect("parses");
        assert!(matches!(&set.keys[0].material, Material::Oct { k } if k == b"a shared secret of some length"));
        assert_eq!(set.keys[0].kid.as_deref(), Some("a\tb"));
        // A stray byte that is not whitespace still spoils the key.
        let bad = format!("{{\"keys\": [{{\"kty\":\"oct\",\"k\":\"{head}\u{1}{tail}\"}}]}}");
        assert_eq!(Jwks::parse(bad.as_bytes()).err(), Some(Status::JwksNoValidKeys));
        // An escaped quote does not end the string early.
        let quoted = format!("{{\"keys\": [{{\"kty\":\"oct\",\"k\":\"{k}\",\"kid\":\"a\\\"\nb\"}}]}}");
        let set = Jwks::parse(quoted.as_bytes()).expect("parses");
        assert_eq!(set.keys[0].kid.as_deref(), Some("a\"\nb"));
    }

    #[test]
    fn bad_key_sets() {
        assert_eq!(Jwks::parse(b"not json").err(), Some(Status::JwksParseError));
        assert_eq!(Jwks::parse(b"{}").err(), Some(Status::JwksNoKeys));
        assert_eq!(Jwks::parse(br#"{"keys":1}"#).err(), Some(Status::JwksBadKeys));
        assert_eq!(Jwks::parse(br#"{"keys":[{"kty":"RSA","n":"%%"}]}"#).err(), Some(Status::JwksNoValidKeys));
        assert_eq!(
            Jwks::parse(br#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}"#).err(),
            Some(Status::JwksNoValidKeys)
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let keys = Jwks::parse(RSA_JWKS.as_bytes()).expect("keys");
        for _ in 0..2000 {
            let len = (next() % 120) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| b"ab.-_{}\"=1%"[(next() % 11) as usize]).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = Jwks::parse(&bytes);
            if let Ok(jwt) = Jwt::parse(&text) {
                let _ = keys.verify(&jwt);
            }
        }
    }
}
