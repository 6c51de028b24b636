//! Answers that complete or fail: what is stored, sent and asked.

use super::*;

#[tokio::test]
async fn an_answer_is_streamed_then_stored_after_the_users_message() {
    let h = harness([Reply::Tokens(vec!["Hel", "lo"])]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "hi").await;

    assert_eq!(outcome, TurnOutcome::Answered);
    assert_eq!(kinds(&events), ["ack", "token", "token", "done"]);
    assert!(matches!(
        events[0],
        ServerEvent::Ack {
            persisted: true,
            ..
        }
    ));
    let ServerEvent::Done {
        message_id,
        reply_to,
        content,
        persisted,
        tokens,
        ..
    } = &events[3]
    else {
        panic!("{events:?}");
    };
    assert_eq!(content, "Hello");
    assert_eq!(*reply_to, ack_id(&events));
    assert_eq!((*tokens, *persisted), (2, true));

    let stored = h
        .history
        .messages(&conversation.session_id, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].role, stored[0].id.as_str()),
        (Role::User, reply_to.as_str())
    );
    assert_eq!(stored[0].content, "hi");
    assert_eq!(
        (stored[1].role, stored[1].id.as_str()),
        (Role::Assistant, message_id.as_str())
    );
    assert_eq!(
        (stored[1].content.as_str(), stored[1].interrupted),
        ("Hello", false)
    );
    assert_eq!(
        prompt_text(&h.llm.prompts()[0]),
        [(Role::System, "be brief"), (Role::User, "hi")]
    );
    assert_eq!(h.state.metrics.llm_tokens.get(), 2);
}

#[tokio::test]
async fn the_prompt_carries_the_conversation_up_to_the_context_limit() {
    let h = harness_with(
        [Reply::Tokens(vec!["a1"]), Reply::Tokens(vec!["a2"])],
        |c| c.llm.context_messages = 3,
    );
    let mut conversation = h.new_conversation().await;
    for text in ["u1", "u2", "u3"] {
        assert_eq!(
            h.turn(&mut conversation, text).await.0,
            TurnOutcome::Answered
        );
    }
    let prompts = h.llm.prompts();
    assert_eq!(
        prompt_text(&prompts[1]),
        [
            (Role::System, "be brief"),
            (Role::User, "u1"),
            (Role::Assistant, "a1"),
            (Role::User, "u2")
        ]
    );
    assert_eq!(
        prompt_text(&prompts[2]),
        [
            (Role::System, "be brief"),
            (Role::User, "u2"),
            (Role::Assistant, "a2"),
            (Role::User, "u3")
        ],
        "only the last 3 messages"
    );
}

/// An answer cut to what was heard (realtime) is what the store keeps
/// and what the model is shown next.
#[tokio::test]
async fn a_replaced_answer_is_stored_and_is_the_next_prompts_context() {
    let h = harness([
        Reply::Tokens(vec!["Hello ", "there, ", "friend"]),
        Reply::Tokens(vec!["ok"]),
    ]);
    let mut conversation = h.new_conversation().await;
    h.turn(&mut conversation, "hi").await;
    let session = conversation.session_id.clone();
    let mut answer = h.history.messages(&session, 10).await.expect("messages")[1].clone();
    assert_eq!(answer.content, "Hello there, friend");
    answer.content = "Hello".into();
    answer.interrupted = true;
    assert!(conversation.replace(&h.state, answer).await);

    h.turn(&mut conversation, "and?").await;
    assert_eq!(
        prompt_text(&h.llm.prompts()[1]),
        [
            (Role::System, "be brief"),
            (Role::User, "hi"),
            (Role::Assistant, "Hello"),
            (Role::User, "and?")
        ]
    );
    assert_eq!(
        h.stored(&session).await[1],
        (Role::Assistant, "Hello".to_owned(), true)
    );
}

#[tokio::test]
async fn a_refused_request_stores_no_answer_and_reports_its_code() {
    let h = harness([Reply::Refuse(LlmError::Unreachable(
        "connection refused".into(),
    ))]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "hello?").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(kinds(&events), ["ack", "error"]);
    assert_eq!(
        final_error(&events),
        ("llm_unavailable".to_owned(), Some(ack_id(&events)))
    );
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("hello?")],
        "the question is kept, unanswered"
    );
    assert_eq!(h.errors("llm_unavailable"), 1);
}

#[tokio::test]
async fn a_broken_stream_keeps_the_partial_answer_marked_interrupted() {
    let h = harness([Reply::BreakAfter(
        vec!["Par", "tial"],
        LlmError::Stream("model runner stopped".into()),
    )]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "q").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(kinds(&events), ["ack", "token", "token", "error"]);
    assert_eq!(final_error(&events).0, "llm_stream_error");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "Partial".into(), true)]
    );
    assert_eq!(h.errors("llm_stream_error"), 1);
}
