//! Who is calling: bearer-token extraction and verification.
//!
//! Two verifiers, chosen by configuration (`settings`):
//! - local (`jwt`): a JWT checked against a key with the algorithm pinned
//!   (HS256 with a shared secret by default; RS256/ES256 with a public key),
//!   `exp` required, `iss`/`aud` checked when configured;
//! - remote (`remote`): the token is POSTed to a verify URL (as the original
//!   system did) and the verdict cached briefly, keyed by a hash of the token.
//!
//! Where a token is found in a request is `extract`'s job.
//! Tokens never reach a log line or an error message.

mod caller;
mod extract;
mod jwt;
mod remote;
mod settings;

use axum::http::HeaderMap;

pub use caller::{Caller, VerifiesTokens};
pub use extract::{
    bearer_from_headers, bearer_from_ws_protocols, openai_key_from_ws_protocols, websocket_token,
};
pub use jwt::{JwtSettings, JwtVerifier};
pub use remote::RemoteVerifier;
pub use settings::AuthSettings;

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

/// The user id rules shared by both verifiers: non-empty, bounded, printable.
fn principal_from(user: Option<String>) -> Result<Principal, AuthError> {
    let user_id = user.ok_or(AuthError::Invalid("no sub claim"))?;
    if user_id.is_empty() || user_id.len() > 256 || user_id.chars().any(char::is_control) {
        return Err(AuthError::Invalid("unusable sub claim"));
    }
    Ok(Principal { user_id })
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
