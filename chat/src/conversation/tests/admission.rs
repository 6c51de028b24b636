//! The checks before anything is stored.

use super::*;

#[test]
fn admit_refuses_empty_and_long_messages_without_using_the_allowance() {
    let h = harness_with([], |c| {
        c.limits.max_message_chars = 5;
        c.limits.messages_per_minute = 2;
    });
    let code = |text: &str| admit(&h.state, "alice", text).err().map(|e| e.code());
    assert_eq!(code(" \n\t"), Some("empty_message"));
    assert_eq!(
        code("ééééé"),
        None,
        "the limit counts characters, not bytes"
    );
    assert_eq!(code("toolong"), Some("message_too_large"));
    assert_eq!(code("ok"), None, "refused messages used no allowance");
    assert_eq!(code("more"), Some("rate_limited"));
    assert_eq!(
        admit(&h.state, "bob", "hi").err().map(|e| e.code()),
        None,
        "the allowance is per user"
    );
}
