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
}

const MAX_LANGUAGE_BYTES: usize = 8;
const MAX_GRAMMAR_PHRASES: usize = 1000;
const MAX_PHRASE_BYTES: usize = 200;

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
            },
        })
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
