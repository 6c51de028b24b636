//! Text to the phoneme ids a Piper voice takes, as Piper (piper-tts 1.8)
//! makes them: espeak-ng clauses with their punctuation kept (a space after
//! `,` `:` `;`), grouped into sentences, decomposed to NFD code points (an
//! accent is its own phoneme), then `^ _ (id _)* $`.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::espeak_bridge::{self, EspeakError, Terminator};

const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

/// How a voice turns text into phonemes (`phoneme_type` in its config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhonemeType {
    /// espeak-ng IPA, in the voice's espeak voice.
    Espeak,
    /// The text's own code points.
    Text,
}

/// Phonemes of `text`, one list per sentence.
pub fn sentences(
    text: &str,
    kind: &PhonemeType,
    espeak_voice: &str,
) -> Result<Vec<Vec<char>>, EspeakError> {
    if *kind == PhonemeType::Text {
        return Ok(vec![text.nfd().collect()]);
    }
    let mut sentences = Vec::new();
    let mut sentence = String::new();
    for clause in espeak_bridge::clauses(text, espeak_voice)? {
        sentence.push_str(&without_language_switches(&clause.phonemes));
        if let Some(symbol) = clause.terminator.symbol() {
            sentence.push(symbol);
        }
        if matches!(
            clause.terminator,
            Terminator::Comma | Terminator::Colon | Terminator::Semicolon
        ) {
            sentence.push(' ');
        }
        if clause.ends_sentence {
            sentences.push(std::mem::take(&mut sentence).nfd().collect());
        }
    }
    if !sentence.is_empty() {
        sentences.push(sentence.nfd().collect());
    }
    sentences.retain(|s: &Vec<char>| !s.is_empty());
    Ok(sentences)
}

/// espeak-ng marks words it read in another language as `(fr)...(en)`.
fn without_language_switches(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut depth = 0usize;
    for c in phonemes.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The voice's ids for `phonemes`; phonemes the voice does not know are
/// left out (as Piper does, which logs them).
pub fn ids(phonemes: &[char], id_map: &HashMap<char, Vec<i64>>) -> Vec<i64> {
    let id = |c: char| id_map.get(&c).map(Vec::as_slice).unwrap_or_default();
    let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
    ids.extend_from_slice(id(BOS));
    ids.extend_from_slice(id(PAD));
    for &phoneme in phonemes {
        let Some(known) = id_map.get(&phoneme) else {
            tracing::debug!(%phoneme, "phoneme not in the voice's map");
            continue;
        };
        ids.extend_from_slice(known);
        ids.extend_from_slice(id(PAD));
    }
    ids.extend_from_slice(id(EOS));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn espeak(text: &str) -> Vec<String> {
        sentences(text, &PhonemeType::Espeak, "en-us")
            .unwrap()
            .into_iter()
            .map(|s| s.into_iter().collect::<String>().nfc().collect())
            .collect()
    }

    // Expected values are what piper-tts 1.8.0's `PiperVoice.phonemize`
    // returns for the same text (the bench script compares them live).
    #[test]
    fn keeps_clause_punctuation_like_piper() {
        assert_eq!(
            espeak("Sure, I can help with that."),
            ["ʃˈʊɹ, aɪ kæn hˈɛlp wɪð ðˈæt."]
        );
        assert_eq!(
            espeak("Hello there. How are you? Fine!"),
            ["həlˈoʊ ðˈɛɹ.", "hˈaʊ ɑːɹ juː?", "fˈaɪn!"]
        );
        assert_eq!(
            espeak("Wait: one; two, three... go!"),
            ["wˈeɪt: wˌʌn; tˈuː, θɹˈiːɡˈoʊ!"]
        );
        assert_eq!(
            espeak("Version 2.5 is out"),
            ["vˈɜːʒən tˈuː pɔɪnt fˈaɪv ɪz ˈaʊt"]
        );
    }

    #[test]
    fn accents_are_separate_phonemes() {
        let phonemes = sentences("Café.", &PhonemeType::Text, "").unwrap();
        assert_eq!(phonemes[0], ['C', 'a', 'f', 'e', '\u{301}', '.']);
    }

    #[test]
    fn ids_are_padded_and_framed() {
        let map: HashMap<char, Vec<i64>> = [('^', 1), ('_', 0), ('$', 2), ('a', 14), ('b', 15)]
            .into_iter()
            .map(|(c, i)| (c, vec![i]))
            .collect();
        assert_eq!(ids(&['a', 'x', 'b'], &map), [1, 0, 14, 0, 15, 0, 2]);
    }
}
