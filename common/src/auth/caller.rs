//! The authenticated caller of a REST endpoint, as an axum extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{Principal, TokenVerifier, authenticate};
use crate::api_error::ApiError;

/// A service state that can check tokens.
pub trait VerifiesTokens {
    fn verifier(&self) -> &TokenVerifier;

    /// Called for each refused request (a metric, say).
    fn refused(&self) {}
}

/// The caller, from `Authorization: Bearer`: 401 for a missing or refused
/// token, 503 when the remote verifier is down.
pub struct Caller(pub Principal);

impl<S: VerifiesTokens + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(state.verifier(), &parts.headers)
            .await
            .map(Caller)
            .inspect_err(|_| state.refused())
    }
}
