//! An error as one line with its causes: reqwest's and hyper's own
//! messages say only "error sending request", the cause says why
//! ("Connection refused").

/// `e`'s message, then each cause the text does not already hold.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message_once() {
        let e = Outer(std::io::Error::other("Connection refused"));
        assert_eq!(super::with_causes(&e), "outer: Connection refused");
    }
}
