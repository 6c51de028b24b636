//! A chat model that answers from a script, for unit tests of everything
//! above the backends: each answer is the next [`Reply`], and every prompt
//! is recorded.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::stream;

use super::{ChatModel, LlmError, PromptMessage, TokenStream};

/// One scripted answer.
pub enum Reply {
    /// These tokens, then the end of the answer.
    Tokens(Vec<&'static str>),
    /// No answer at all: the request fails (server down, HTTP error).
    Refuse(LlmError),
    /// These tokens, then an error in the stream.
    BreakAfter(Vec<&'static str>, LlmError),
    /// These tokens, then silence until the caller gives up.
    Stall(Vec<&'static str>),
}

pub struct ScriptedModel {
    replies: Mutex<VecDeque<Reply>>,
    prompts: Mutex<Vec<Vec<PromptMessage>>>,
}

impl ScriptedModel {
    /// Answers with `replies` in order, then with "ok" to anything more.
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            replies: Mutex::new(replies.into_iter().collect()),
            prompts: Mutex::new(Vec::new()),
        }
    }

    /// Every prompt received, oldest first.
    pub fn prompts(&self) -> Vec<Vec<PromptMessage>> {
        self.prompts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn tokens(tokens: Vec<&'static str>) -> impl futures_util::Stream<Item = Result<String, LlmError>> {
    stream::iter(tokens.into_iter().map(|t| Ok(t.to_owned())))
}

impl ChatModel for ScriptedModel {
    fn stream_chat(
        &self,
        messages: Vec<PromptMessage>,
    ) -> BoxFuture<'_, Result<TokenStream, LlmError>> {
        self.prompts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(messages);
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or(Reply::Tokens(vec!["ok"]));
        Box::pin(async move {
            use futures_util::StreamExt;
            let stream: TokenStream = match reply {
                Reply::Refuse(e) => return Err(e),
                Reply::Tokens(t) => Box::pin(tokens(t)),
                Reply::BreakAfter(t, e) => {
                    Box::pin(tokens(t).chain(stream::once(async { Err(e) })))
                }
                Reply::Stall(t) => Box::pin(tokens(t).chain(stream::pending())),
            };
            Ok(stream)
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "scripted"
    }
}
