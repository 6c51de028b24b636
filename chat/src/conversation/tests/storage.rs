//! The history store's side: an outage, a session taken meanwhile, opening.

use super::*;

#[tokio::test]
async fn a_history_outage_is_reported_once_and_the_chat_goes_on() {
    let h = harness([]);
    let mut conversation = h.new_conversation().await;
    h.history.set_reachable(false);

    let (outcome, events) = h.turn(&mut conversation, "during 1").await;
    assert_eq!(outcome, TurnOutcome::Answered);
    assert_eq!(kinds(&events), ["warning", "ack", "token", "done"]);
    assert!(
        matches!(&events[0], ServerEvent::Warning { code, .. } if code == "history_unavailable")
    );
    assert!(matches!(
        events[1],
        ServerEvent::Ack {
            persisted: false,
            ..
        }
    ));
    assert!(matches!(
        events[3],
        ServerEvent::Done {
            persisted: false,
            ..
        }
    ));
    let (_, events) = h.turn(&mut conversation, "during 2").await;
    assert_eq!(
        kinds(&events),
        ["ack", "token", "done"],
        "warned once per outage"
    );
    assert_eq!(
        prompt_text(&h.llm.prompts()[1]),
        [
            (Role::System, "be brief"),
            (Role::User, "during 1"),
            (Role::Assistant, "ok"),
            (Role::User, "during 2")
        ],
        "the model still sees the conversation"
    );

    h.history.set_reachable(true);
    let (_, events) = h.turn(&mut conversation, "after").await;
    assert!(matches!(
        events[0],
        ServerEvent::Ack {
            persisted: true,
            ..
        }
    ));
    assert!(matches!(
        events[2],
        ServerEvent::Done {
            persisted: true,
            ..
        }
    ));
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("after"), (Role::Assistant, "ok".into(), false)]
    );
    h.history.set_reachable(false);
    let (_, events) = h.turn(&mut conversation, "again down").await;
    assert_eq!(
        kinds(&events)[0],
        "warning",
        "a new outage is reported again"
    );
}

#[tokio::test]
async fn a_session_taken_by_another_user_meanwhile_is_refused() {
    let h = harness([]);
    let mut conversation = h.new_conversation().await;
    h.history
        .claim(&conversation.session_id, "mallory")
        .await
        .unwrap();
    let (outcome, events) = h.turn(&mut conversation, "secret").await;

    assert_eq!(outcome, TurnOutcome::Refused);
    assert_eq!(kinds(&events), ["error"]);
    assert_eq!(final_error(&events), ("forbidden".to_owned(), None));
    assert!(h.stored(&conversation.session_id).await.is_empty());
    assert!(h.llm.prompts().is_empty(), "the model is not asked");
}

#[tokio::test]
async fn open_checks_the_id_and_the_owner_and_loads_the_history() {
    let h = harness([]);
    let mut first = h.open("alice", Some("s-1")).await.unwrap().conversation;
    assert!(!first.existed);
    h.turn(&mut first, "earlier").await;

    let refused = h.open("alice", Some("a:b")).await.err().unwrap();
    assert_eq!(refused.code(), "invalid_session_id");
    let refused = h.open("bob", Some("s-1")).await.err().unwrap();
    assert_eq!(refused.code(), "forbidden");

    let opened = h.open("alice", Some("s-1")).await.unwrap();
    assert!(opened.history_available);
    assert!(opened.conversation.existed);
    let contents: Vec<&str> = opened.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["earlier", "ok"]);
    let mut again = opened.conversation;
    h.turn(&mut again, "now").await;
    assert_eq!(
        prompt_text(&h.llm.prompts()[1])[1..],
        [
            (Role::User, "earlier"),
            (Role::Assistant, "ok"),
            (Role::User, "now")
        ],
        "the stored history is the context"
    );
}

#[tokio::test]
async fn open_during_an_outage_gives_a_conversation_without_history() {
    let h = harness([]);
    h.history.set_reachable(false);
    let opened = h.open("alice", Some("s-1")).await.unwrap();
    assert!(!opened.history_available);
    assert!(opened.history.is_empty());
    assert_eq!(h.errors("history_unavailable"), 1);
}
