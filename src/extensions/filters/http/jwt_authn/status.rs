//! Why a token was refused, in Envoy's words.
//!
//! Envoy answers a refused request with the status's text as the body (its JWT
//! library's `getStatusString`), so each reason Courier can reach is one variant
//! here with Envoy's exact text, its HTTP status (403 only for audiences) and its
//! `%RESPONSE_CODE_DETAILS%` (`jwt_authn_access_denied{<text with _ for spaces>}`).

use http::StatusCode;

/// The outcome of verifying a token, or a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    JwtMissed,
    JwtNotYetValid,
    JwtExpired,
    JwtBadFormat,
    JwtHeaderBadBase64,
    JwtHeaderBadJson,
    JwtHeaderBadAlg,
    JwtHeaderNotImplementedAlg,
    JwtHeaderBadKid,
    JwtPayloadBadBase64,
    JwtEd25519SignatureWrongLength,
    JwtPayloadBadJson,
    JwtIssNotString,
    JwtSubNotString,
    JwtIatNotInteger,
    JwtNbfNotInteger,
    JwtExpNotInteger,
    JwtJtiNotString,
    JwtAudNotString,
    JwtSignatureBadBase64,
    JwtUnknownIssuer,
    JwtAudienceNotAllowed,
    JwtVerificationFail,
    JwksParseError,
    JwksNoKeys,
    JwksBadKeys,
    JwksNoValidKeys,
    JwksKidAlgMismatch,
    JwksFetchFail,
}

impl Status {
    /// Envoy's text: the body of the refusal.
    pub fn message(self) -> &'static str {
        self.texts().0
    }

    /// `%RESPONSE_CODE_DETAILS%` of the refusal.
    pub fn details(self) -> &'static str {
        self.texts().1
    }

    fn texts(self) -> (&'static str, &'static str) {
        // Spelled out rather than built, as `LocalReply::details` is static.
        macro_rules! t {
            ($text:literal, $details:literal) => {
                ($text, concat!("jwt_authn_access_denied{", $details, "}"))
            };
        }
        match self {
            Status::Ok => ("OK", "OK"),
            Status::JwtMissed => t!("Jwt is missing", "Jwt_is_missing"),
            Status::JwtNotYetValid => t!("Jwt not yet valid", "Jwt_not_yet_valid"),
            Status::JwtExpired => t!("Jwt is expired", "Jwt_is_expired"),
            Status::JwtBadFormat => t!(
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
                "Jwt_is_not_in_the_form_of_Header.Payload.Signature_with_two_dots_and_3_sections"
            ),
            Status::JwtHeaderBadBase64 => {
                t!("Jwt header is an invalid Base64url encoded", "Jwt_header_is_an_invalid_Base64url_encoded")
            }
            Status::JwtHeaderBadJson => t!("Jwt header is an invalid JSON", "Jwt_header_is_an_invalid_JSON"),
            Status::JwtHeaderBadAlg => t!(
                "Jwt header [alg] field is required and must be a string",
                "Jwt_header_[alg]_field_is_required_and_must_be_a_string"
            ),
            Status::JwtHeaderNotImplementedAlg => {
                t!("Jwt header [alg] is not supported", "Jwt_header_[alg]_is_not_supported")
            }
            Status::JwtHeaderBadKid => {
                t!("Jwt header [kid] field is not a string", "Jwt_header_[kid]_field_is_not_a_string")
            }
            Status::JwtPayloadBadBase64 => {
                t!("Jwt payload is an invalid Base64url encoded", "Jwt_payload_is_an_invalid_Base64url_encoded")
            }
            Status::JwtEd25519SignatureWrongLength => {
                t!("Jwt ED25519 signature is wrong length", "Jwt_ED25519_signature_is_wrong_length")
            }
            Status::JwtPayloadBadJson => t!("Jwt payload is an invalid JSON", "Jwt_payload_is_an_invalid_JSON"),
            Status::JwtIssNotString => {
                t!("Jwt payload [iss] field is not a string", "Jwt_payload_[iss]_field_is_not_a_string")
            }
            Status::JwtSubNotString => {
                t!("Jwt payload [sub] field is not a string", "Jwt_payload_[sub]_field_is_not_a_string")
            }
            Status::JwtIatNotInteger => {
                t!("Jwt payload [iat] field is not an integer", "Jwt_payload_[iat]_field_is_not_an_integer")
            }
            Status::JwtNbfNotInteger => {
                t!("Jwt payload [nbf] field is not an integer", "Jwt_payload_[nbf]_field_is_not_an_integer")
            }
            Status::JwtExpNotInteger => {
                t!("Jwt payload [exp] field is not an integer", "Jwt_payload_[exp]_field_is_not_an_integer")
            }
            Status::JwtJtiNotString => {
                t!("Jwt payload [jti] field is not a string", "Jwt_payload_[jti]_field_is_not_a_string")
            }
            Status::JwtAudNotString => t!(
                "Jwt payload [aud] field is not a string or string list",
                "Jwt_payload_[aud]_field_is_not_a_string_or_string_list"
            ),
            Status::JwtSignatureBadBase64 => {
                t!("Jwt signature is an invalid Base64url encoded", "Jwt_signature_is_an_invalid_Base64url_encoded")
            }
            Status::JwtUnknownIssuer => t!("Jwt issuer is not configured", "Jwt_issuer_is_not_configured"),
            Status::JwtAudienceNotAllowed => {
                t!("Audiences in Jwt are not allowed", "Audiences_in_Jwt_are_not_allowed")
            }
            Status::JwtVerificationFail => t!("Jwt verification fails", "Jwt_verification_fails"),
            Status::JwksParseError => t!("Jwks is an invalid JSON", "Jwks_is_an_invalid_JSON"),
            Status::JwksNoKeys => t!("Jwks does not have [keys] field", "Jwks_does_not_have_[keys]_field"),
            Status::JwksBadKeys => t!("[keys] in Jwks is not an array", "[keys]_in_Jwks_is_not_an_array"),
            Status::JwksNoValidKeys => {
                t!("Jwks doesn't have any valid public key", "Jwks_doesn't_have_any_valid_public_key")
            }
            Status::JwksKidAlgMismatch => t!(
                "Jwks doesn't have key to match kid or alg from Jwt",
                "Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt"
            ),
            Status::JwksFetchFail => t!("Jwks remote fetch is failed", "Jwks_remote_fetch_is_failed"),
        }
    }

    /// The refusal's HTTP status: 403 when the token is good but not for this
    /// audience, else 401.
    pub fn http_status(self) -> StatusCode {
        if self == Status::JwtAudienceNotAllowed {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
}
