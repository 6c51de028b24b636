//! OAuth access tokens for a service account: a JWT assertion signed with
//! the account's RSA key (RS256) is exchanged at its `token_uri`, and the
//! token is reused until a minute before it expires.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

pub struct TokenSource {
    email: String,
    key: EncodingKey,
    token_uri: String,
    http: reqwest::Client,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TokenSource")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn from_file(path: &std::path::Path, http: reqwest::Client) -> Result<Self, String> {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let account: ServiceAccount = serde_json::from_str(&raw)
            .map_err(|e| format!("{} is not a service-account key: {e}", path.display()))?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| format!("{}: bad private_key: {e}", path.display()))?;
        Ok(Self {
            email: account.client_email,
            key,
            token_uri: account.token_uri,
            http,
            cached: Mutex::new(None),
        })
    }

    pub async fn token(&self) -> Result<String, String> {
        if let Ok(cached) = self.cached.lock()
            && let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Assertion {
            iss: &self.email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the token request: {e}"))?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ])
            .send()
            .await
            .map_err(|e| format!("token request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("token request refused: {}", response.status()));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| format!("bad token response: {e}"))?;
        let valid_until = Instant::now() + Duration::from_secs(token.expires_in.saturating_sub(60));
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((token.access_token.clone(), valid_until));
        }
        Ok(token.access_token)
    }
}
