//! HTTP routes: thin handlers that parse, call `speech`, and map errors.

pub mod native;
pub mod openai;
pub mod openai_stt;
pub mod ops;
pub mod realtime;
pub mod speech_stream;
pub mod sse;
pub mod stream;

pub use voicechat_common::auth::Caller;
