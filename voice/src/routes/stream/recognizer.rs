//! The recognizer of one `/ws/stt` connection. It lives on one blocking
//! thread for the whole connection (engine streams borrow their engine
//! and are not moved between threads); audio goes to it over a channel
//! and its updates come back the same way. Dropping it detaches the
//! thread, which ends after the audio already queued.

use std::sync::mpsc::{SyncSender, sync_channel};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::speech::PlannedStream;
use crate::stt::{StreamUpdate, Transcript};

/// Pieces of audio (or updates) in flight before the sender waits.
const QUEUE: usize = 32;

/// What the recognizer says after a piece of audio or the end of an utterance.
pub enum Update {
    Stream(StreamUpdate),
    Ended(Transcript),
}

pub struct Recognizer {
    /// `None` ends the utterance.
    audio: SyncSender<Option<Vec<i16>>>,
    updates: mpsc::Receiver<Result<Update, String>>,
    worker: JoinHandle<()>,
}

impl Recognizer {
    /// Starts the plan's engine on a blocking thread; a failure to start
    /// comes back as the first update.
    pub fn start(planned: PlannedStream) -> Self {
        let (audio, audio_rx) = sync_channel::<Option<Vec<i16>>>(QUEUE);
        let (update_tx, updates) = mpsc::channel(QUEUE);
        let worker = tokio::task::spawn_blocking(move || {
            let PlannedStream {
                engines,
                plan,
                request,
            } = planned;
            let mut stream = match engines.stt.start_stream(&plan, &request.options) {
                Ok(s) => s,
                Err(e) => {
                    let _ = update_tx.blocking_send(Err(e.to_string()));
                    return;
                }
            };
            while let Ok(message) = audio_rx.recv() {
                let result = match message {
                    Some(samples) => stream.accept(&samples).map(Update::Stream),
                    None => stream.finish().map(Update::Ended),
                };
                if update_tx
                    .blocking_send(result.map_err(|e| e.to_string()))
                    .is_err()
                {
                    return;
                }
            }
        });
        Self {
            audio,
            updates,
            worker,
        }
    }

    /// Hands on 16 kHz samples; `false` once the recognizer has stopped.
    pub fn accept(&self, samples: Vec<i16>) -> bool {
        self.audio.send(Some(samples)).is_ok()
    }

    /// Ends the utterance; `false` once the recognizer has stopped.
    pub fn end_utterance(&self) -> bool {
        self.audio.send(None).is_ok()
    }

    /// The next update; `None` once the recognizer has stopped.
    pub async fn next(&mut self) -> Option<Result<Update, String>> {
        self.updates.recv().await
    }

    /// Stops the recognizer and waits for its thread.
    pub async fn stop(self) {
        let Self {
            audio,
            updates,
            worker,
        } = self;
        // Both ends go first: a worker blocked on a full update queue
        // then returns instead of waiting forever.
        drop(audio);
        drop(updates);
        let _ = worker.await;
    }
}
