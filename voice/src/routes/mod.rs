//! HTTP routes: thin handlers that parse, call `speech`, and map errors.

pub mod native;
pub mod openai;
pub mod ops;
pub mod stream;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use voicechat_common::api_error::ApiError;
use voicechat_common::auth::Principal;

use crate::state::AppState;

/// The authenticated caller (`Authorization: Bearer`).
pub struct Caller(#[allow(dead_code)] pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        voicechat_common::auth::authenticate(&state.verifier, &parts.headers)
            .await
            .map(Caller)
    }
}
