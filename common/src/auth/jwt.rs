//! Local JWT verification with a pinned algorithm, and minting tokens for
//! demos and tests.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, MIN_HS256_SECRET_BYTES, Principal, check_size, principal_from};
use crate::config::ConfigError;

/// Claims read from a token. `user_id` is accepted for tokens minted by the
/// original Python system; `sub` is the standard place.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Settings for local JWT verification.
#[derive(Clone)]
pub struct JwtSettings {
    pub algorithm: Algorithm,
    key: KeyMaterial,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
}

#[derive(Clone)]
enum KeyMaterial {
    Secret(Vec<u8>),
    PublicPem(Vec<u8>),
}

impl std::fmt::Debug for JwtSettings {
    // Hand-written so the secret can never be printed by `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl JwtSettings {
    /// HS256 with a shared secret.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let secret = secret.into();
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET".into(),
                message: format!(
                    "HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes, got {}",
                    secret.len()
                ),
            });
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: KeyMaterial::Secret(secret),
            issuer: None,
            audience: None,
            leeway_secs: 30,
        })
    }

    /// RS256 or ES256 with a PEM public key.
    pub fn public_key(algorithm: Algorithm, pem: Vec<u8>) -> Self {
        Self {
            algorithm,
            key: KeyMaterial::PublicPem(pem),
            issuer: None,
            audience: None,
            leeway_secs: 30,
        }
    }

    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// Mints an HS256 token for `user` (the `mint-token` commands and tests).
    /// Fails for public-key settings: the service never holds a private key.
    pub fn mint(&self, user: &str, ttl: Duration) -> Result<String, AuthError> {
        let KeyMaterial::Secret(secret) = &self.key else {
            return Err(AuthError::Invalid("cannot mint without a shared secret"));
        };
        let now = unix_now();
        let claims = Claims {
            sub: Some(user.to_owned()),
            user_id: None,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .map_err(|_| AuthError::Invalid("cannot sign token"))
    }
}

/// Local JWT verification with a pinned algorithm.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, ConfigError> {
        let key = match (&settings.key, settings.algorithm) {
            (KeyMaterial::Secret(s), Algorithm::HS256) => DecodingKey::from_secret(s),
            (KeyMaterial::PublicPem(p), Algorithm::RS256) => DecodingKey::from_rsa_pem(p)
                .map_err(|e| key_error(format!("not an RSA public key: {e}")))?,
            (KeyMaterial::PublicPem(p), Algorithm::ES256) => DecodingKey::from_ec_pem(p)
                .map_err(|e| key_error(format!("not an EC public key: {e}")))?,
            (_, alg) => return Err(key_error(format!("unsupported algorithm {alg:?}"))),
        };
        // One algorithm only: a token signed with anything else (`none`, or
        // HS256 with the public key as secret) fails before its signature
        // is even looked at.
        let mut validation = Validation::new(settings.algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        match &settings.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        check_size(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| classify(e.kind()))?;
        principal_from(data.claims.sub.or(data.claims.user_id))
    }
}

fn key_error(message: String) -> ConfigError {
    ConfigError::Invalid {
        name: "JWT_PUBLIC_KEY_FILE".into(),
        message,
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::Invalid("token not yet valid"),
        ErrorKind::InvalidSignature => AuthError::Invalid("bad signature"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::Invalid("algorithm not allowed")
        }
        ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer"),
        ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience"),
        ErrorKind::MissingRequiredClaim(_) => AuthError::Invalid("missing required claim"),
        _ => AuthError::Invalid("malformed token"),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::super::MAX_TOKEN_BYTES;
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn verifier(iss: Option<&str>, aud: Option<&str>) -> JwtVerifier {
        let s = JwtSettings::hs256(SECRET.as_bytes().to_vec())
            .unwrap()
            .with_issuer(iss.map(str::to_owned))
            .with_audience(aud.map(str::to_owned))
            .with_leeway(0);
        JwtVerifier::new(&s).unwrap()
    }

    #[test]
    fn accepts_a_good_token_and_reads_sub_or_user_id() {
        let v = verifier(None, None);
        let exp = unix_now() + 60;
        let t = sign(
            serde_json::json!({"sub": "alice", "exp": exp}),
            Algorithm::HS256,
            SECRET,
        );
        assert_eq!(v.verify(&t).unwrap().user_id, "alice");
        let t = sign(
            serde_json::json!({"user_id": "bob", "exp": exp}),
            Algorithm::HS256,
            SECRET,
        );
        assert_eq!(v.verify(&t).unwrap().user_id, "bob");
    }

    #[test]
    fn refuses_the_matrix() {
        let v = verifier(Some("issuer"), Some("aud"));
        let now = unix_now();
        let good = serde_json::json!({"sub": "a", "exp": now + 60, "iss": "issuer", "aud": "aud"});
        assert!(
            v.verify(&sign(good.clone(), Algorithm::HS256, SECRET))
                .is_ok()
        );
        let cases = [
            (
                "no exp",
                sign(
                    serde_json::json!({"sub": "a", "iss": "issuer", "aud": "aud"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "expired",
                sign(
                    serde_json::json!({"sub": "a", "exp": now - 10, "iss": "issuer", "aud": "aud"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "nbf future",
                sign(
                    serde_json::json!({"sub": "a", "exp": now + 60, "nbf": now + 30, "iss": "issuer", "aud": "aud"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "wrong iss",
                sign(
                    serde_json::json!({"sub": "a", "exp": now + 60, "iss": "x", "aud": "aud"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "wrong aud",
                sign(
                    serde_json::json!({"sub": "a", "exp": now + 60, "iss": "issuer", "aud": "x"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "bad signature",
                sign(
                    good.clone(),
                    Algorithm::HS256,
                    "another-secret-another-secret-xx",
                ),
            ),
            (
                "alg swap HS384",
                sign(good.clone(), Algorithm::HS384, SECRET),
            ),
            (
                "no sub",
                sign(
                    serde_json::json!({"exp": now + 60, "iss": "issuer", "aud": "aud"}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            ("garbage", "not.a.jwt".to_owned()),
            ("empty", String::new()),
            ("huge", "a".repeat(MAX_TOKEN_BYTES + 1)),
        ];
        for (name, token) in cases {
            assert!(v.verify(&token).is_err(), "{name} was accepted");
        }
        // alg=none: header {"alg":"none"} with an empty signature.
        let b64 = |s: &str| base64url(s.as_bytes());
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&good.to_string())
        );
        assert!(v.verify(&none).is_err(), "alg none accepted");
    }

    fn base64url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(JwtSettings::hs256(b"short".to_vec()).is_err());
    }

    #[test]
    fn minted_tokens_verify() {
        let s = JwtSettings::hs256(SECRET.as_bytes().to_vec())
            .unwrap()
            .with_issuer(Some("i".into()));
        let t = s.mint("carol", Duration::from_secs(60)).unwrap();
        assert_eq!(
            JwtVerifier::new(&s).unwrap().verify(&t).unwrap().user_id,
            "carol"
        );
    }
}
