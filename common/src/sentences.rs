//! Splitting text into sentences: long text is synthesized sentence by
//! sentence (bounded model inputs, natural pauses between sentences), and
//! an answer streamed from an LLM is spoken as each sentence completes.

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

/// Text that arrives in pieces (an LLM's answer, Wyoming's streaming
/// synthesis), cut into sentences as soon as each is known to be
/// complete: a sentence end followed by whitespace, or a line break. What
/// may still go on stays buffered until `finish`; a buffer that grows past
/// `max_chars` without an end is cut as `split` cuts.
#[derive(Debug)]
pub struct SentenceBuffer {
    pending: String,
    max_chars: usize,
}

impl SentenceBuffer {
    pub fn new(max_chars: usize) -> Self {
        Self {
            pending: String::new(),
            max_chars,
        }
    }

    /// Adds `text`; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut complete_to = 0;
        let mut chars = self.pending.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let ends = match c {
                '\n' | '\r' => true,
                '。' | '！' | '？' => true,
                '.' | '!' | '?' => next.is_some_and(char::is_whitespace),
                _ => false,
            };
            if ends {
                complete_to = i + c.len_utf8();
            }
        }
        let mut done = split(&self.pending[..complete_to], self.max_chars);
        self.pending.drain(..complete_to);
        if self.pending.chars().count() > self.max_chars {
            let mut parts = split(&self.pending, self.max_chars);
            // The last part may still grow.
            self.pending = parts.pop().unwrap_or_default();
            done.extend(parts);
        }
        done
    }

    /// The rest of the text, as sentences.
    pub fn finish(&mut self) -> Vec<String> {
        split(&std::mem::take(&mut self.pending), self.max_chars)
    }
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

    #[test]
    fn a_buffer_gives_sentences_once_they_are_complete() {
        let mut b = SentenceBuffer::new(100);
        assert!(b.push("Sure, I can").is_empty());
        assert_eq!(b.push(" help. Version 2"), ["Sure, I can help."]);
        assert!(b.push(".").is_empty(), "an end needs what follows it");
        assert_eq!(b.push("5 is out. Next"), ["Version 2.5 is out."]);
        assert_eq!(b.push(" line\nand"), ["Next line"]);
        assert!(b.push(" the end!").is_empty());
        assert_eq!(b.finish(), ["and the end!"]);
        assert!(b.finish().is_empty());
        assert_eq!(b.push("안녕하세요。감사"), ["안녕하세요。"]);
    }

    #[test]
    fn a_buffer_without_sentence_ends_is_cut_at_the_limit() {
        let mut b = SentenceBuffer::new(10);
        assert!(b.push("one two").is_empty());
        assert_eq!(b.push(" three four five"), ["one two", "three four"]);
        assert_eq!(b.finish(), ["five"]);
    }
}
