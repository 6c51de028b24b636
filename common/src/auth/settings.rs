//! Which verifier the environment asks for.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{JwtSettings, JwtVerifier, RemoteVerifier, TokenVerifier};
use crate::config::{self, ConfigError};

/// Authentication settings, read from the environment:
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `AUTH_VERIFY_URL` | unset | remote verification instead of local JWT checks |
/// | `API_BASE_URL` | unset | the seed system's name: `AUTH_VERIFY_URL` is then `$API_BASE_URL/api/v1/auth/verify-token` |
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
        if let Some(url) = verify_url()? {
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

/// The seed system verified tokens at `$API_BASE_URL/api/v1/auth/verify-token`.
const SEED_VERIFY_PATH: &str = "/api/v1/auth/verify-token";

/// `AUTH_VERIFY_URL`, or the seed's verify endpoint under `API_BASE_URL`.
fn verify_url() -> Result<Option<String>, ConfigError> {
    let Some((raw, variable)) = config::env_string_or_seed("AUTH_VERIFY_URL", "API_BASE_URL")
    else {
        return Ok(None);
    };
    let url = config::http_url(&variable, &raw)?;
    Ok(Some(if variable == "AUTH_VERIFY_URL" {
        url
    } else {
        format!("{url}{SEED_VERIFY_PATH}")
    }))
}
