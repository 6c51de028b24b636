//! Answers that stop early (deadline, cancel, client gone) keep what streamed.

use super::*;

#[tokio::test]
async fn a_stalled_answer_ends_at_the_total_timeout() {
    let h = harness_with([Reply::Stall(vec!["slow"])], |c| {
        c.llm.total_timeout = Duration::from_millis(50);
    });
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "q").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(final_error(&events).0, "llm_timeout");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "slow".into(), true)]
    );
}

#[tokio::test]
async fn cancelling_stops_the_answer_and_keeps_what_streamed() {
    let h = harness([Reply::Stall(vec!["so far"])]);
    let mut conversation = h.new_conversation().await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let turn = conversation.turn(&h.state, "q".into(), &tx, &cancel);
    let read = async {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            if matches!(event, ServerEvent::Token { .. }) {
                cancel.cancel();
            }
            let last = matches!(event, ServerEvent::Error { .. });
            events.push(event);
            if last {
                return events;
            }
        }
        events
    };
    let (outcome, events) = tokio::join!(turn, read);

    assert_eq!(outcome, TurnOutcome::Cancelled);
    assert_eq!(kinds(&events), ["ack", "token", "error"]);
    assert_eq!(final_error(&events).0, "cancelled");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "so far".into(), true)]
    );
    assert_eq!(h.errors("cancelled"), 1);
}

#[tokio::test]
async fn a_client_gone_mid_answer_stops_it_and_keeps_what_streamed() {
    let h = harness([Reply::Stall(vec!["so far"])]);
    let mut conversation = h.new_conversation().await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let turn = conversation.turn(&h.state, "q".into(), &tx, &cancel);
    let read = async move {
        while let Some(event) = rx.recv().await {
            if matches!(event, ServerEvent::Token { .. }) {
                return; // drops the receiver, as a closed socket does
            }
        }
    };
    let (outcome, ()) = tokio::join!(turn, read);

    assert_eq!(outcome, TurnOutcome::Cancelled);
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "so far".into(), true)]
    );
}
