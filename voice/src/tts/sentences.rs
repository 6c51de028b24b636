//! Splitting text into sentences: long text is synthesized sentence by
//! sentence (bounded model inputs, natural pauses between sentences).

/// Sentences of `text`, each trimmed and non-empty. A sentence ends at
/// `.`, `!`, `?` (or their CJK forms) followed by whitespace or the end,
/// and at line breaks; a sentence longer than `max_chars` is cut at the
/// last space before the limit.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            flush(&mut current, &mut sentences, max_chars);
            continue;
        }
        current.push(c);
        let ends = matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
            && chars
                .peek()
                .is_none_or(|n| n.is_whitespace() || matches!(c, '。' | '！' | '？'));
        if ends {
            flush(&mut current, &mut sentences, max_chars);
        }
    }
    flush(&mut current, &mut sentences, max_chars);
    sentences
}

fn flush(current: &mut String, out: &mut Vec<String>, max_chars: usize) {
    let mut rest = current.trim().to_owned();
    current.clear();
    while rest.chars().count() > max_chars {
        let cut_at = rest
            .char_indices()
            // A space right after `max_chars` characters is a clean cut too.
            .take(max_chars + 1)
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .last()
            .unwrap_or_else(|| {
                rest.char_indices()
                    .nth(max_chars)
                    .map_or(rest.len(), |(i, _)| i)
            });
        let head = rest[..cut_at].trim().to_owned();
        if !head.is_empty() {
            out.push(head);
        }
        rest = rest[cut_at..].trim().to_owned();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_sentence_ends_and_lines() {
        assert_eq!(
            split("Hello there. How are you?\nFine! Version 2.5 is out.", 100),
            [
                "Hello there.",
                "How are you?",
                "Fine!",
                "Version 2.5 is out."
            ]
        );
        assert_eq!(
            split("안녕하세요。감사합니다。", 100),
            ["안녕하세요。", "감사합니다。"]
        );
        assert!(split("  \n ", 100).is_empty());
    }

    #[test]
    fn cuts_overlong_sentences_at_spaces() {
        let parts = split("one two three four five six", 10);
        assert_eq!(parts, ["one two", "three four", "five six"]);
        assert!(
            split(&"x".repeat(25), 10)
                .iter()
                .all(|p| p.chars().count() <= 10)
        );
    }
}
