//! Who is calling: bearer-token extraction and verification.
//!
//! Two verifiers, chosen by configuration:
//! - local: a JWT checked against a key with the algorithm pinned (HS256 with
//!   a shared secret by default; RS256/ES256 with a public key), `exp`
//!   required, `iss`/`aud` checked when configured;
//! - remote: the token is POSTed to a verify URL (as the original system did)
//!   and the verdict cached briefly, keyed by a hash of the token.
//!
//! Tokens never reach a log line or an error message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// HS256 secrets shorter than this are refused at start-up: a short shared
/// secret can be brute-forced offline from any captured token.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
}

/// Why a token was refused. Messages are safe to send to the client.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("token verification service unavailable")]
    VerifierUnavailable,
}

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

/// The user id rules shared by both verifiers: non-empty, bounded, printable.
fn principal_from(user: Option<String>) -> Result<Principal, AuthError> {
    let user_id = user.ok_or(AuthError::Invalid("no sub claim"))?;
    if user_id.is_empty() || user_id.len() > 256 || user_id.chars().any(char::is_control) {
        return Err(AuthError::Invalid("unusable sub claim"));
    }
    Ok(Principal { user_id })
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

fn check_size(token: &str) -> Result<(), AuthError> {
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Verification by a remote service: `POST {url}` with `{"token": "..."}`;
/// a 200 answer `{"valid": true, "user_id"|"sub": "..."}` accepts, a 401/403
/// or `valid: false` refuses, anything else is an outage (not cached).
pub struct RemoteVerifier {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], CachedVerdict>>,
}

/// When a verdict was fetched, and what it was.
type CachedVerdict = (Instant, Result<Principal, AuthError>);

/// Bounds the verdict cache; when full it is cleared rather than evicted
/// entry by entry: verdicts are cheap to fetch again.
const REMOTE_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Deserialize)]
struct RemoteVerdict {
    #[serde(default)]
    valid: Option<bool>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

impl RemoteVerifier {
    pub fn new(url: String, ttl: Duration, timeout: Duration) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ConfigError::Invalid {
                name: "AUTH_VERIFY_URL".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            url,
            http,
            ttl,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        check_size(token)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let verdict = self.ask(token).await;
        if !matches!(verdict, Err(AuthError::VerifierUnavailable)) {
            self.remember(key, verdict.clone());
        }
        verdict
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<Principal, AuthError>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: [u8; 32], verdict: Result<Principal, AuthError>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= REMOTE_CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), verdict));
        }
    }

    async fn ask(&self, token: &str) -> Result<Principal, AuthError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "token verification service unreachable");
                AuthError::VerifierUnavailable
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(AuthError::Invalid("refused by verification service"));
        }
        if !status.is_success() {
            tracing::warn!(%status, "token verification service failed");
            return Err(AuthError::VerifierUnavailable);
        }
        let verdict: RemoteVerdict = response
            .json()
            .await
            .map_err(|_| AuthError::VerifierUnavailable)?;
        if verdict.valid == Some(false) {
            return Err(AuthError::Invalid("refused by verification service"));
        }
        principal_from(verdict.user_id.or(verdict.sub))
    }
}

/// The configured verifier.
pub enum TokenVerifier {
    Local(JwtVerifier),
    Remote(RemoteVerifier),
}

impl TokenVerifier {
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match self {
            Self::Local(v) => v.verify(token),
            Self::Remote(v) => v.verify(token).await,
        }
    }
}

/// Authentication settings, read from the environment:
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `AUTH_VERIFY_URL` | unset | remote verification instead of local JWT checks |
/// | `AUTH_VERIFY_CACHE_SECS` | 30 | how long a remote verdict is reused |
/// | `JWT_ALGORITHM` | HS256 | HS256, RS256 or ES256 (the only one accepted) |
/// | `JWT_SECRET_FILE` / `JWT_SECRET` | — | HS256 shared secret (≥ 32 bytes) |
/// | `JWT_PUBLIC_KEY_FILE` | — | PEM public key for RS256/ES256 |
/// | `JWT_ISSUER`, `JWT_AUDIENCE` | unset | required `iss`/`aud` when set |
/// | `JWT_LEEWAY_SECS` | 30 | clock skew allowed on `exp`/`nbf` |
#[derive(Debug, Clone)]
pub enum AuthSettings {
    Local(JwtSettings),
    Remote { url: String, cache_ttl: Duration },
}

impl AuthSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Some(url) = config::env_string("AUTH_VERIFY_URL") {
            let secs = config::env_parse("AUTH_VERIFY_CACHE_SECS", 30u64)?;
            return Ok(Self::Remote {
                url,
                cache_ttl: Duration::from_secs(secs),
            });
        }
        let algorithm = match config::env_string("JWT_ALGORITHM").as_deref() {
            None | Some("HS256") => Algorithm::HS256,
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "JWT_ALGORITHM".into(),
                    message: format!("{other:?} is not one of HS256, RS256, ES256"),
                });
            }
        };
        let settings = if algorithm == Algorithm::HS256 {
            let secret = config::secret("JWT_SECRET")?.ok_or_else(|| ConfigError::Missing {
                name: "JWT_SECRET_FILE or JWT_SECRET".into(),
                hint: "the HS256 secret shared with whoever issues tokens".into(),
            })?;
            JwtSettings::hs256(secret.into_bytes())?
        } else {
            let path =
                config::env_string("JWT_PUBLIC_KEY_FILE").ok_or_else(|| ConfigError::Missing {
                    name: "JWT_PUBLIC_KEY_FILE".into(),
                    hint: format!("a PEM public key for {algorithm:?}"),
                })?;
            let pem = std::fs::read(&path).map_err(|source| ConfigError::File {
                name: "JWT_PUBLIC_KEY_FILE".into(),
                path,
                source,
            })?;
            JwtSettings::public_key(algorithm, pem)
        };
        Ok(Self::Local(
            settings
                .with_issuer(config::env_string("JWT_ISSUER"))
                .with_audience(config::env_string("JWT_AUDIENCE"))
                .with_leeway(config::env_parse("JWT_LEEWAY_SECS", 30u64)?),
        ))
    }

    pub fn verifier(&self) -> Result<TokenVerifier, ConfigError> {
        Ok(match self {
            Self::Local(s) => TokenVerifier::Local(JwtVerifier::new(s)?),
            Self::Remote { url, cache_ttl } => TokenVerifier::Remote(RemoteVerifier::new(
                url.clone(),
                *cache_ttl,
                Duration::from_secs(5),
            )?),
        })
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer_from_headers(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `Sec-WebSocket-Protocol: bearer, <token>`: browsers cannot set headers on
/// a WebSocket, but they can offer subprotocols.
pub fn bearer_from_ws_protocols(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    let mut parts = value.split(',').map(str::trim);
    let first = parts.next()?;
    if !first.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parts.next().filter(|t| !t.is_empty())
}

/// The token of a WebSocket handshake: `?token=` (the original system's
/// form), `Authorization: Bearer`, or the subprotocol offer
/// `bearer, <token>`. The flag says it came as a subprotocol, in which case
/// the server must select `bearer` or browsers fail the handshake.
pub fn websocket_token<'a>(
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Option<(&'a str, bool)> {
    query
        .map(|t| (t, false))
        .or_else(|| bearer_from_headers(headers).map(|t| (t, false)))
        .or_else(|| bearer_from_ws_protocols(headers).map(|t| (t, true)))
}

/// Authenticates a REST request from its `Authorization: Bearer` header,
/// as both services do: 401 for a missing or refused token, 503 when the
/// remote verifier is down.
pub async fn authenticate(
    verifier: &TokenVerifier,
    headers: &HeaderMap,
) -> Result<Principal, crate::api_error::ApiError> {
    use crate::api_error::ApiError;
    let token = bearer_from_headers(headers).ok_or(AuthError::Missing);
    let verdict = match token {
        Ok(t) => verifier.verify(t).await,
        Err(e) => Err(e),
    };
    verdict.map_err(|e| match e {
        AuthError::VerifierUnavailable => ApiError::unavailable("auth_unavailable", e.to_string()),
        _ => ApiError::unauthorized(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn extracts_tokens_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("sec-websocket-protocol", "bearer, xyz".parse().unwrap());
        assert_eq!(bearer_from_headers(&h), Some("abc"));
        assert_eq!(bearer_from_ws_protocols(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        h.insert("sec-websocket-protocol", "chat, xyz".parse().unwrap());
        assert_eq!(bearer_from_headers(&h), None);
        assert_eq!(bearer_from_ws_protocols(&h), None);
    }
}
