//! REST endpoints: the caller's sessions, a session's messages, deleting a
//! session, and `POST /api/v1/chat`, which streams an answer as
//! server-sent events so that `curl -N` can chat.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use voicechat_common::api_error::ApiError;
use voicechat_common::auth::Caller;

use crate::conversation::{Conversation, OpenError, admit};
use crate::history::{HistoryError, check_owner, valid_session_id};
use crate::protocol::{ChatRequest, ServerEvent, SessionList, SessionMessages};
use crate::state::AppState;

fn history_error(e: HistoryError) -> ApiError {
    match e {
        HistoryError::Unavailable(_) => ApiError::unavailable(
            e.code(),
            "chat history is unavailable right now; try again shortly",
        ),
        HistoryError::Forbidden => ApiError::forbidden("session belongs to another user"),
        HistoryError::NotFound => ApiError::not_found("no such session"),
    }
}

fn open_error(e: OpenError) -> ApiError {
    let status = match e {
        OpenError::InvalidSessionId => StatusCode::BAD_REQUEST,
        OpenError::Forbidden => StatusCode::FORBIDDEN,
    };
    ApiError::new(status, e.code(), e.to_string())
}

fn check_session_id(id: &str) -> Result<(), ApiError> {
    if valid_session_id(id) {
        Ok(())
    } else {
        Err(open_error(OpenError::InvalidSessionId))
    }
}

pub async fn list_sessions(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state
        .history
        .sessions(&p.user_id)
        .await
        .map_err(history_error)?;
    Ok(Json(SessionList { sessions }))
}

#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    limit: Option<usize>,
}

pub async fn session_messages(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(session_id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<SessionMessages>, ApiError> {
    check_session_id(&session_id)?;
    let owner = state
        .history
        .owner(&session_id)
        .await
        .map_err(history_error)?;
    check_owner(owner.as_deref(), &p.user_id).map_err(history_error)?;
    let max = state.config.history.max_messages;
    let limit = q.limit.unwrap_or(max).clamp(1, max);
    let messages = state
        .history
        .messages(&session_id, limit)
        .await
        .map_err(history_error)?;
    Ok(Json(SessionMessages {
        session_id,
        messages,
    }))
}

pub async fn delete_session(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_session_id(&session_id)?;
    state
        .history
        .delete(&session_id, &p.user_id)
        .await
        .map_err(history_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/chat`: validates everything first (so a refused request
/// gets a plain JSON error and stores nothing), then streams the same
/// events as the WebSocket, `type` as the event name.
pub async fn chat_sse(
    State(state): State<AppState>,
    Caller(p): Caller,
    body: Result<Json<ChatRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) =
        body.map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
    let opened = Conversation::open(&state, &p.user_id, request.session_id)
        .await
        .map_err(open_error)?;
    admit(&state, &p.user_id, &request.message).map_err(|e| {
        state.metrics.error(e.code());
        let status = match e {
            crate::conversation::InputError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            crate::conversation::InputError::TooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            crate::conversation::InputError::Empty => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    })?;

    let (tx, rx) = mpsc::channel::<ServerEvent>(256);
    let mut conversation = opened.conversation;
    let first = ServerEvent::Session {
        session_id: conversation.session_id.clone(),
        created: !conversation.existed,
    };
    let task_state = state.clone();
    // The answer runs in its own task: when the client disconnects, the
    // receiver is dropped, the turn sees the channel close, stops the LLM
    // request and stores what was streamed.
    state.tasks.spawn(async move {
        let cancel = CancellationToken::new();
        let shutdown = task_state.shutdown.clone();
        let drain = task_state.config.limits.shutdown_drain;
        let stop_on_shutdown = {
            let cancel = cancel.clone();
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(drain).await;
                cancel.cancel();
            }
        };
        tokio::select! {
            _ = conversation.turn(&task_state, request.message, &tx, &cancel) => {}
            () = stop_on_shutdown => {}
        }
    });
    let events = tokio_stream::once(first).chain(ReceiverStream::new(rx));
    Ok(Sse::new(to_sse(events))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn to_sse(
    events: impl Stream<Item = ServerEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    events.map(|event| {
        let sse = Event::default().event(event.kind());
        Ok(sse
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().event("error")))
    })
}
