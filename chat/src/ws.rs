//! `GET /ws/chat`: authentication at upgrade, then one task per socket that
//! reads client frames, runs one answer at a time, keeps the connection
//! alive with pings and closes it cleanly (idle, shutdown, errors).
//!
//! Close codes: 4001 unauthorized, 4003 another user's session,
//! 4400 bad request (session id), 4408 idle timeout, 1001 server shutdown,
//! 1011 internal error; for frames that cannot be read, 1007 (invalid
//! UTF-8), 1009 (over the size limit) or 1002 (protocol error).

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voicechat_common::auth::Principal;
use voicechat_common::ws::{self, code};

use crate::conversation::{Conversation, OpenError, admit};
use crate::metrics::GaugeGuard;
use crate::protocol::{ClientMessage, ServerEvent};
use crate::state::AppState;

const SOCKET_BUFFER_BYTES: usize = 4 * 1024;
/// Messages a client may send ahead while an answer streams.
const MAX_QUEUED_MESSAGES: usize = 8;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    session_id: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let limits = &state.config.limits;
    // Small per-socket buffers: the defaults (128 KiB each way) dominate
    // the memory of an idle connection; chat frames are a few hundred bytes.
    let ws = ws
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes);
    let (ws, auth) =
        ws::authenticate_upgrade(ws, query.token.as_deref(), &headers, &state.verifier).await;
    let tracker = state.tasks.clone();
    ws.on_upgrade(move |socket| {
        tracker.track_future(async move {
            match auth {
                Ok(principal) => run(socket, state, principal, query.session_id).await,
                Err(e) => {
                    state.metrics.error("unauthorized");
                    ws::refuse(socket, &e).await;
                }
            }
        })
    })
}

enum Control {
    Ping,
    Close(u16, &'static str),
}

/// At most this many queued events go out in one write.
const EVENTS_PER_WRITE: usize = 64;

/// Sends events and control frames in order; returns when closed. Events
/// already queued behind the first (a burst of tokens) are written with it
/// and flushed once: one syscall and one packet instead of one per token.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut events: mpsc::Receiver<ServerEvent>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut batch = Vec::with_capacity(EVENTS_PER_WRITE);
    loop {
        let message = tokio::select! {
            biased;
            Some(event) = events.recv() => {
                batch.push(encode(&event));
                // Lets a producer that is running now add what it has.
                tokio::task::yield_now().await;
                while batch.len() < EVENTS_PER_WRITE {
                    let Ok(event) = events.try_recv() else { break };
                    batch.push(encode(&event));
                }
                for message in batch.drain(..).flatten() {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                continue;
            }
            Some(c) = control.recv() => match c {
                Control::Ping => Message::Ping(bytes::Bytes::new()),
                Control::Close(code, reason) => {
                    // Events already queued go out before the close frame.
                    while let Ok(event) = events.try_recv() {
                        if let Some(message) = encode(&event) {
                            let _ = sink.feed(message).await;
                        }
                    }
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
            },
            else => return,
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

fn encode(event: &ServerEvent) -> Option<Message> {
    match serde_json::to_string(event) {
        Ok(mut json) => {
            // A buffer as long as its text becomes the frame's `Bytes`
            // as is; a longer one costs another allocation (a shared
            // header) per event. Shrinking in place is nearly free.
            json.shrink_to_fit();
            Some(Message::Text(json.into()))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode event");
            None
        }
    }
}

async fn run(socket: WebSocket, state: AppState, principal: Principal, session_id: Option<String>) {
    state.metrics.ws_opened.inc();
    let _active = GaugeGuard::inc(&state.metrics.ws_active);

    let opened = match Conversation::open(&state, &principal.user_id, session_id).await {
        Ok(opened) => opened,
        Err(e) => {
            let code = match e {
                OpenError::InvalidSessionId => code::BAD_REQUEST,
                OpenError::Forbidden => code::FORBIDDEN,
            };
            state.metrics.error(e.code());
            ws::close(socket, code, &e.to_string()).await;
            return;
        }
    };

    let (sink, mut stream) = socket.split();
    let (events, events_rx) = mpsc::channel::<ServerEvent>(256);
    let (control, control_rx) = mpsc::channel::<Control>(4);
    let writer = tokio::spawn(write_loop(sink, events_rx, control_rx));

    let conversation = opened.conversation;
    let _ = events
        .send(ServerEvent::Session {
            session_id: conversation.session_id.clone(),
            created: !conversation.existed,
        })
        .await;
    let _ = events
        .send(ServerEvent::History {
            session_id: conversation.session_id.clone(),
            messages: opened.history,
            persisted: opened.history_available,
        })
        .await;
    if !opened.history_available {
        let _ = events.send(Conversation::unsaved_warning()).await;
    }

    let limits = state.config.limits.clone();
    let mut idle_conversation = Some(conversation);
    let mut turn: Option<(JoinHandle<Conversation>, CancellationToken)> = None;
    let mut last_heard = Instant::now();
    let mut ping =
        tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    let mut drain_deadline: Option<Instant> = None;
    let mut queued: VecDeque<String> = VecDeque::new();

    let close_with = loop {
        if drain_deadline.is_some() && turn.is_none() {
            break Some((code::GOING_AWAY, "server shutting down"));
        }
        // One answer at a time, in order; a message waits here (not yet
        // acknowledged) while the previous answer streams.
        if turn.is_none()
            && let Some(content) = queued.pop_front()
            && let Some(mut conversation) = idle_conversation.take()
        {
            let cancel = CancellationToken::new();
            let (st, tx, c) = (state.clone(), events.clone(), cancel.clone());
            let handle = tokio::spawn(async move {
                conversation.turn(&st, content, &tx, &c).await;
                conversation
            });
            turn = Some((handle, cancel));
        }
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => break ws::for_read_error(e),
                    None => break None,
                };
                last_heard = Instant::now();
                match frame {
                    Message::Text(text) => {
                        match serde_json::from_str::<ClientMessage>(text.as_str()) {
                            Ok(ClientMessage::Message { content }) => {
                                if drain_deadline.is_some() {
                                    let _ = events.send(ServerEvent::error("shutting_down", "the server is shutting down; reconnect")).await;
                                } else if queued.len() >= MAX_QUEUED_MESSAGES {
                                    let _ = events.send(ServerEvent::error("queue_full", format!("{MAX_QUEUED_MESSAGES} messages are already waiting for an answer"))).await;
                                } else if let Err(e) = admit(&state, &principal.user_id, &content) {
                                    state.metrics.error(e.code());
                                    let _ = events.send(ServerEvent::error(e.code(), e.to_string())).await;
                                } else {
                                    queued.push_back(content);
                                }
                            }
                            Ok(ClientMessage::Cancel) => {
                                if let Some((_, cancel)) = &turn {
                                    cancel.cancel();
                                }
                            }
                            Ok(ClientMessage::Ping) => {
                                let _ = events.send(ServerEvent::Pong).await;
                            }
                            Err(e) => {
                                state.metrics.error("invalid_message");
                                let _ = events.send(ServerEvent::error(
                                    "invalid_message",
                                    format!("expected {{\"type\":\"message\",\"content\":\"...\"}}, \"cancel\" or \"ping\": {e}"),
                                )).await;
                            }
                        }
                    }
                    Message::Binary(_) => {
                        let _ = events.send(ServerEvent::error("unsupported_frame", "binary frames are not accepted; send JSON text")).await;
                    }
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            joined = async { match &mut turn { Some((h, _)) => h.await, None => std::future::pending().await } } => {
                turn = None;
                match joined {
                    Ok(conversation) => idle_conversation = Some(conversation),
                    Err(e) => {
                        tracing::error!(error = %e, "answer task failed");
                        break Some((code::INTERNAL, "internal error"));
                    }
                }
            }
            _ = ping.tick() => {
                if turn.is_none() && last_heard.elapsed() > limits.idle_timeout {
                    break Some((code::IDLE_TIMEOUT, "idle timeout"));
                }
                let _ = control.send(Control::Ping).await;
            }
            () = state.shutdown.cancelled(), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + limits.shutdown_drain);
                for _ in queued.drain(..) {
                    let _ = events.send(ServerEvent::error("shutting_down", "the server is shutting down; this message was not processed")).await;
                }
            }
            () = sleep_until(drain_deadline), if turn.is_some() => {
                if let Some((_, cancel)) = &turn {
                    cancel.cancel();
                }
            }
        }
    };

    // Client gone (or closing): stop the answer; its partial text is
    // stored by the turn itself, so wait for it briefly.
    if let Some((handle, cancel)) = turn.take() {
        cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    }
    let we_close = close_with.is_some();
    if let Some((code, reason)) = close_with {
        let _ = control.send(Control::Close(code, reason)).await;
    }
    drop(events);
    drop(control);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if we_close {
        ws::await_close_reply(&mut stream).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
