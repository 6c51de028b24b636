//! A speech-to-text request's parameters as a client sends them, checked
//! in one place for every route (batch, OpenAI, streaming): language and
//! grammar reach engine code and model paths, so none goes unchecked.

use super::SttOptions;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRequest {
    #[error("language {0:?} is not a language code")]
    Language(String),
    #[error("grammar must be 1-1000 phrases of at most 200 bytes")]
    GrammarSize,
    #[error("grammar must be a JSON array of strings: {0}")]
    GrammarJson(String),
    #[error("prompt is {0} bytes; at most {MAX_PROMPT_BYTES} are taken")]
    PromptSize(usize),
    #[error("temperature {0:?} is not a number between 0 and 1")]
    Temperature(String),
}

const MAX_LANGUAGE_BYTES: usize = 8;
const MAX_GRAMMAR_PHRASES: usize = 1000;
const MAX_PHRASE_BYTES: usize = 200;
/// Whisper reads at most 224 tokens of prompt; this is well past that.
const MAX_PROMPT_BYTES: usize = 4096;

/// How to decode, beyond language and grammar (the OpenAI fields).
#[derive(Debug, Clone, Default)]
pub struct DecodingRequest {
    pub prompt: Option<String>,
    /// As the client wrote it.
    pub temperature: Option<String>,
    pub translate: bool,
    pub word_timestamps: bool,
}

/// What is asked of speech-to-text, apart from the audio.
#[derive(Debug, Clone)]
pub struct SttRequest {
    /// The engine asked for by name (`None`: routing picks); routing
    /// refuses a name it does not know.
    pub engine: Option<String>,
    /// The language lowercased, and the grammar.
    pub options: SttOptions,
}

impl SttRequest {
    pub fn new(
        language: Option<String>,
        engine: Option<String>,
        grammar: Option<Vec<String>>,
    ) -> Result<Self, InvalidRequest> {
        if let Some(l) = &language
            && (l.len() > MAX_LANGUAGE_BYTES
                || !l.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
        {
            return Err(InvalidRequest::Language(l.clone()));
        }
        if let Some(g) = &grammar
            && (g.is_empty()
                || g.len() > MAX_GRAMMAR_PHRASES
                || g.iter().any(|p| p.len() > MAX_PHRASE_BYTES))
        {
            return Err(InvalidRequest::GrammarSize);
        }
        Ok(Self {
            engine,
            options: SttOptions {
                language: language.map(|l| l.to_ascii_lowercase()),
                grammar,
                ..SttOptions::default()
            },
        })
    }

    /// Adds the decoding fields, checked.
    pub fn with_decoding(mut self, decoding: DecodingRequest) -> Result<Self, InvalidRequest> {
        if let Some(p) = &decoding.prompt
            && p.len() > MAX_PROMPT_BYTES
        {
            return Err(InvalidRequest::PromptSize(p.len()));
        }
        let temperature = decoding
            .temperature
            .map(|t| match t.trim().parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
                _ => Err(InvalidRequest::Temperature(t)),
            })
            .transpose()?;
        self.options.prompt = decoding.prompt.filter(|p| !p.trim().is_empty());
        self.options.temperature = temperature;
        self.options.translate = decoding.translate;
        self.options.word_timestamps = decoding.word_timestamps;
        Ok(self)
    }

    /// What makes two requests' answers differ, apart from the audio: the
    /// cache key's parts.
    pub fn cache_parts(&self) -> String {
        let o = &self.options;
        let grammar = o.grammar.as_ref().map(|g| g.join("\u{1f}"));
        format!(
            "{:?}\u{1e}{:?}\u{1e}{:?}\u{1e}{:?}\u{1e}{:?}\u{1e}{}\u{1e}{}",
            self.engine,
            o.language,
            grammar,
            o.prompt,
            o.temperature.map(f32::to_bits),
            o.translate,
            o.word_timestamps
        )
    }
}

/// A grammar as the query or a form field carries it: a JSON array of phrases.
pub fn parse_grammar(raw: Option<&str>) -> Result<Option<Vec<String>>, InvalidRequest> {
    raw.map(|g| {
        serde_json::from_str::<Vec<String>>(g)
            .map_err(|e| InvalidRequest::GrammarJson(e.to_string()))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_must_be_codes_and_are_lowercased() {
        let r = SttRequest::new(Some("KO".into()), None, None).unwrap();
        assert_eq!(r.options.language.as_deref(), Some("ko"));
        assert!(SttRequest::new(Some("en-US".into()), None, None).is_ok());
        for bad in ["../../etc", "ko/../x", "abcdefghi", "en_US"] {
            assert_eq!(
                SttRequest::new(Some(bad.into()), None, None).unwrap_err(),
                InvalidRequest::Language(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn prompts_and_temperatures_are_bounded() {
        let base = || SttRequest::new(None, None, None).unwrap();
        let with = |prompt: Option<String>, temperature: Option<&str>| {
            base().with_decoding(DecodingRequest {
                prompt,
                temperature: temperature.map(str::to_owned),
                ..DecodingRequest::default()
            })
        };
        let r = with(Some("Kubernetes, Wyoming".into()), Some("0.4")).unwrap();
        assert_eq!(r.options.prompt.as_deref(), Some("Kubernetes, Wyoming"));
        assert_eq!(r.options.temperature, Some(0.4));
        assert!(with(Some("x".repeat(4096)), Some("1")).is_ok());
        assert_eq!(
            with(Some("x".repeat(4097)), None).unwrap_err(),
            InvalidRequest::PromptSize(4097)
        );
        for bad in ["-0.1", "1.5", "hot", "NaN"] {
            assert_eq!(
                with(None, Some(bad)).unwrap_err(),
                InvalidRequest::Temperature(bad.into())
            );
        }
        // Every field that changes the answer changes the cache key.
        let key = |r: SttRequest| r.cache_parts();
        let plain = key(base());
        assert_ne!(plain, key(with(Some("p".into()), None).unwrap()));
        assert_ne!(plain, key(with(None, Some("0.2")).unwrap()));
        let words = base()
            .with_decoding(DecodingRequest {
                word_timestamps: true,
                ..DecodingRequest::default()
            })
            .unwrap();
        assert_ne!(plain, key(words));
    }

    #[test]
    fn grammars_are_bounded_json_arrays() {
        let phrases = |n: usize, len: usize| Some(vec!["a".repeat(len); n]);
        assert!(SttRequest::new(None, None, phrases(1000, 200)).is_ok());
        for bad in [phrases(0, 1), phrases(1001, 1), phrases(1, 201)] {
            assert_eq!(
                SttRequest::new(None, None, bad).unwrap_err(),
                InvalidRequest::GrammarSize
            );
        }
        assert_eq!(
            parse_grammar(Some(r#"["yes","no"]"#)).unwrap(),
            Some(vec!["yes".to_owned(), "no".to_owned()])
        );
        assert_eq!(parse_grammar(None).unwrap(), None);
        assert!(matches!(
            parse_grammar(Some("notjson")),
            Err(InvalidRequest::GrammarJson(_))
        ));
    }
}
