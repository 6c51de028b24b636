//! The sending side of a realtime socket: events go out in order, a burst
//! in one flush, then the close frame when one is asked for.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use serde_json::Value;
use tokio::sync::mpsc;

/// Sends events in order, then the close frame when one is asked for.
pub async fn write_events(
    mut sink: SplitSink<WebSocket, Message>,
    mut events: mpsc::Receiver<Value>,
    mut close: mpsc::Receiver<(u16, &'static str)>,
) {
    loop {
        tokio::select! {
            biased;
            Some(event) = events.recv() => {
                if sink.feed(Message::Text(event.to_string().into())).await.is_err() {
                    return;
                }
                while let Ok(event) = events.try_recv() {
                    if sink.feed(Message::Text(event.to_string().into())).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            Some((code, reason)) = close.recv() => {
                while let Ok(event) = events.try_recv() {
                    let _ = sink.feed(Message::Text(event.to_string().into())).await;
                }
                let frame = CloseFrame { code, reason: reason.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            else => return,
        }
    }
}
