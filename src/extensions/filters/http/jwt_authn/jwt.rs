//! A JWT read from its compact form (`header.payload.signature`, each
//! base64url; empty parts skipped, as Envoy splits), checked as Envoy's JWT library checks it before any key is
//! looked at: three parts, JSON objects, a supported `alg`, and the registered
//! claims of the right types. Nothing here trusts the bytes: every failure is a
//! `Status`, and tokens over `MAX_TOKEN` are refused before decoding.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use super::status::Status;

/// The largest token read (Envoy bounds it by the header size; so does this).
pub const MAX_TOKEN: usize = 64 * 1024;

/// base64url with or without padding and with any trailing bits, as Envoy decodes.
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The signature algorithms Envoy's JWT library knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    Hs256,
    Hs384,
    Hs512,
    EdDsa,
}

impl Alg {
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "ES512" => Alg::Es512,
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }
}

/// A parsed token.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub alg: Alg,
    /// The header's `alg` as written (a key's `alg` is compared with it).
    pub alg_name: String,
    pub kid: Option<String>,
    pub iss: String,
    pub audiences: Vec<String>,
    pub nbf: Option<u64>,
    pub exp: Option<u64>,
    pub payload: Map<String, Value>,
    /// The payload as it came (base64url, no padding unless it was sent so).
    pub payload_base64url: String,
    /// `header.payload`: what the signature signs.
    pub signed: String,
    pub signature: Vec<u8>,
}

fn object(part: &str, bad_base64: Status, bad_json: Status) -> Result<Map<String, Value>, Status> {
    let bytes = BASE64URL.decode(part).map_err(|_| bad_base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad_json),
    }
}

fn string_claim(payload: &Map<String, Value>, name: &str, bad: Status) -> Result<Option<String>, Status> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad),
    }
}

fn time_claim(payload: &Map<String, Value>, name: &str, bad: Status) -> Result<Option<u64>, Status> {
    match payload.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(bad),
    }
}

impl Jwt {
    pub fn parse(token: &str) -> Result<Jwt, Status> {
        // Empty parts are skipped, as Envoy splits: `h..p.s` is read as `h.p.s`.
        let parts: Vec<&str> = token.split('.').filter(|p| !p.is_empty()).collect();
        if parts.len() != 3 || token.len() > MAX_TOKEN {
            return Err(Status::JwtBadFormat);
        }
        let header = object(parts[0], Status::JwtHeaderBadBase64, Status::JwtHeaderBadJson)?;
        let Some(Value::String(alg_name)) = header.get("alg") else { return Err(Status::JwtHeaderBadAlg) };
        let alg = Alg::from_name(alg_name).ok_or(Status::JwtHeaderNotImplementedAlg)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(Status::JwtHeaderBadKid),
        };
        let payload = object(parts[1], Status::JwtPayloadBadBase64, Status::JwtPayloadBadJson)?;
        let iss = string_claim(&payload, "iss", Status::JwtIssNotString)?.unwrap_or_default();
        string_claim(&payload, "sub", Status::JwtSubNotString)?;
        time_claim(&payload, "iat", Status::JwtIatNotInteger)?;
        let nbf = time_claim(&payload, "nbf", Status::JwtNbfNotInteger)?;
        let exp = time_claim(&payload, "exp", Status::JwtExpNotInteger)?;
        string_claim(&payload, "jti", Status::JwtJtiNotString)?;
        let audiences = match payload.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or(Status::JwtAudNotString))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Status::JwtAudNotString),
        };
        let signature = BASE64URL.decode(parts[2]).map_err(|_| Status::JwtSignatureBadBase64)?;
        if alg == Alg::EdDsa && signature.len() != 64 {
            return Err(Status::JwtEd25519SignatureWrongLength);
        }
        Ok(Jwt {
            alg,
            alg_name: alg_name.clone(),
            kid,
            iss,
            audiences,
            nbf,
            exp,
            payload,
            payload_base64url: parts[1].to_string(),
            signed: format!("{}.{}", parts[0], parts[1]),
            signature,
        })
    }

    /// `nbf` and `exp` against `now` (Unix seconds), each with `skew` seconds of slack.
    pub fn check_time(&self, now: u64, skew: u64) -> Status {
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Status::JwtNotYetValid;
        }
        if self.exp.is_some_and(|exp| exp.saturating_add(skew) < now) {
            return Status::JwtExpired;
        }
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        BASE64URL.encode(s)
    }

    fn parse(header: &str, payload: &str) -> Result<Jwt, Status> {
        Jwt::parse(&format!("{}.{}.c2ln", b64(header), b64(payload)))
    }

    #[test]
    fn malformed_tokens_are_refused_with_envoys_reason() {
        assert_eq!(Jwt::parse("a.b").err(), Some(Status::JwtBadFormat));
        assert_eq!(Jwt::parse("a.b.c.d").err(), Some(Status::JwtBadFormat));
        assert_eq!(parse(r#"{"alg":"none"}"#, "{}").map(|_| ()).err(), Some(Status::JwtHeaderNotImplementedAlg));
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(Jwt::parse(&unsigned).err(), Some(Status::JwtBadFormat));
        let dotted = format!(".{}..{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(Jwt::parse(&dotted).map(|j| j.signed.matches('.').count()), Ok(1));
        assert_eq!(Jwt::parse("not.a.jwt").err(), Some(Status::JwtHeaderBadJson));
        assert_eq!(Jwt::parse("%%.a.b").err(), Some(Status::JwtHeaderBadBase64));
        assert_eq!(parse("[1]", "{}").err(), Some(Status::JwtHeaderBadJson));
        assert_eq!(parse("{}", "{}").err(), Some(Status::JwtHeaderBadAlg));
        assert_eq!(parse(r#"{"alg":"none"}"#, "{}").err(), Some(Status::JwtHeaderNotImplementedAlg));
        assert_eq!(parse(r#"{"alg":"RS256","kid":1}"#, "{}").err(), Some(Status::JwtHeaderBadKid));
        assert_eq!(parse(r#"{"alg":"RS256"}"#, "x").err(), Some(Status::JwtPayloadBadJson));
        assert_eq!(parse(r#"{"alg":"RS256"}"#, r#"{"iss":1}"#).err(), Some(Status::JwtIssNotString));
        assert_eq!(parse(r#"{"alg":"RS256"}"#, r#"{"exp":"soon"}"#).err(), Some(Status::JwtExpNotInteger));
        assert_eq!(parse(r#"{"alg":"RS256"}"#, r#"{"nbf":-1}"#).err(), Some(Status::JwtNbfNotInteger));
        assert_eq!(parse(r#"{"alg":"RS256"}"#, r#"{"aud":[1]}"#).err(), Some(Status::JwtAudNotString));
        let bad_sig = format!("{}.{}.%%", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(Jwt::parse(&bad_sig).err(), Some(Status::JwtSignatureBadBase64));
    }

    #[test]
    fn claims_and_time() {
        let jwt =
            parse(r#"{"alg":"ES256","kid":"k"}"#, r#"{"iss":"i","aud":["a","b"],"nbf":100,"exp":200}"#).expect("token");
        assert_eq!((jwt.alg, jwt.kid.as_deref(), jwt.iss.as_str()), (Alg::Es256, Some("k"), "i"));
        assert_eq!(jwt.audiences, ["a", "b"]);
        assert_eq!(jwt.check_time(150, 0), Status::Ok);
        assert_eq!(jwt.check_time(50, 0), Status::JwtNotYetValid);
        assert_eq!(jwt.check_time(50, 60), Status::Ok);
        assert_eq!(jwt.check_time(261, 60), Status::JwtExpired);
        assert_eq!(jwt.check_time(260, 60), Status::Ok);
    }
}
