//! OpenAI's Realtime API, the parts both services need: the events
//! (`protocol`), the audio formats (`audio`, `g711`), voice activity
//! detection (`vad`), the input audio buffer it watches (`input`) and the
//! socket's sending side (`socket`). The chat service holds realtime
//! conversations (`/v1/realtime`); the voice service transcription
//! sessions (`/v1/realtime?intent=transcription`).

pub mod audio;
pub mod g711;
pub mod input;
pub mod protocol;
pub mod socket;
pub mod vad;

pub use audio::{AudioFormat, OutputEncoder};
pub use input::{InputBuffer, Turn};
pub use protocol::{ClientEvent, EventError, Incoming, new_id, parse, server_event};
pub use vad::{Vad, VadEvent, VadSettings};
