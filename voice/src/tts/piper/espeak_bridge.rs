//! espeak-ng as Piper uses it: text to IPA phonemes clause by clause, with
//! the punctuation that ended each clause. Piper's voices were trained on
//! phonemes that keep that punctuation (`,` becomes a pause, `?` a rising
//! tone), so dropping it, as plain `espeak_TextToPhonemes` does, changes
//! the speech.
//!
//! Upstream espeak-ng (1.52) has `espeak_TextToPhonemesWithTerminator` for
//! this; the copy that `espeak-rs-sys` builds has everything it calls but
//! not the function itself, so `next_clause` is that function, over the
//! same library symbols (`espeak-rs-sys` is pinned to the version checked).
//! espeak-ng keeps its state in globals: every call holds `ESPEAK`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use espeak_rs_sys as sys;

/// Where the data directory (`espeak-ng-data`) is looked for, as piper-rs
/// and Piper's own builds look: this variable, the working directory,
/// then the executable's directory.
const DATA_DIR_VARIABLE: &str = "PIPER_ESPEAKNG_DATA_DIRECTORY";
const DATA_DIR_NAME: &str = "espeak-ng-data";

// `translate.h`: what ended a clause.
const CLAUSE_TYPE_SENTENCE: c_int = 0x0008_0000;
const CLAUSE_TYPE_CLAUSE: c_int = 0x0004_0000;
const INTONATION_COMMA: c_int = 0x0000_1000;
const INTONATION_QUESTION: c_int = 0x0000_2000;
const INTONATION_EXCLAMATION: c_int = 0x0000_3000;
const CLAUSE_PERIOD: c_int = 40 | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COMMA: c_int = 20 | INTONATION_COMMA | CLAUSE_TYPE_CLAUSE;
const CLAUSE_QUESTION: c_int = 40 | INTONATION_QUESTION | CLAUSE_TYPE_SENTENCE;
const CLAUSE_EXCLAMATION: c_int = 45 | INTONATION_EXCLAMATION | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COLON: c_int = 30 | CLAUSE_TYPE_CLAUSE;
const CLAUSE_SEMICOLON: c_int = 30 | INTONATION_COMMA | CLAUSE_TYPE_CLAUSE;
/// The bits of a terminator that name its punctuation (as Piper masks it).
const PUNCTUATION_MASK: c_int = 0x000F_FFFF;
/// `espeakPHONEMES_IPA`.
const PHONEMES_IPA: c_int = 0x02;
/// `ENS_OK`.
const OK: c_int = 0;

unsafe extern "C" {
    static mut p_decoder: *mut c_void;
    static mut translator: *mut c_void;
    fn create_text_decoder() -> *mut c_void;
    fn text_decoder_decode_string_multibyte(
        decoder: *mut c_void,
        input: *const c_void,
        encoding: c_int,
        flags: c_int,
    ) -> c_int;
    fn text_decoder_get_buffer(decoder: *mut c_void) -> *const c_char;
    fn TranslateClauseWithTerminator(
        tr: *mut c_void,
        tone_out: *mut c_int,
        voice_change: *mut *mut c_char,
        terminator_out: *mut c_int,
    );
    fn GetTranslatedPhonemeString(phoneme_mode: c_int) -> *const c_char;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EspeakError {
    #[error(
        "espeak-ng did not start (code {0}); set {DATA_DIR_VARIABLE} to the directory holding {DATA_DIR_NAME}"
    )]
    Init(c_int),
    #[error("espeak-ng has no voice {0:?}")]
    UnknownVoice(String),
    #[error("text holds a NUL character")]
    Nul,
    #[error("espeak-ng could not decode the text")]
    Decode,
    #[error("an earlier espeak-ng call panicked")]
    Poisoned,
}

/// What ended a clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    Period,
    Question,
    Exclamation,
    Comma,
    Colon,
    Semicolon,
    /// The end of the text, or punctuation Piper does not keep (`...`).
    Other,
}

impl Terminator {
    fn from_espeak(terminator: c_int) -> Self {
        match terminator & PUNCTUATION_MASK {
            CLAUSE_PERIOD => Self::Period,
            CLAUSE_QUESTION => Self::Question,
            CLAUSE_EXCLAMATION => Self::Exclamation,
            CLAUSE_COMMA => Self::Comma,
            CLAUSE_COLON => Self::Colon,
            CLAUSE_SEMICOLON => Self::Semicolon,
            _ => Self::Other,
        }
    }

    /// The character Piper's phoneme maps give this punctuation.
    pub fn symbol(self) -> Option<char> {
        match self {
            Self::Period => Some('.'),
            Self::Question => Some('?'),
            Self::Exclamation => Some('!'),
            Self::Comma => Some(','),
            Self::Colon => Some(':'),
            Self::Semicolon => Some(';'),
            Self::Other => None,
        }
    }
}

/// One clause: its phonemes (IPA), what ended it, and whether that ended
/// a sentence too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub phonemes: String,
    pub terminator: Terminator,
    pub ends_sentence: bool,
}

static ESPEAK: Mutex<()> = Mutex::new(());
static STARTED: OnceLock<Result<(), EspeakError>> = OnceLock::new();

/// `text` in `voice` (an espeak-ng voice such as `en-us`), clause by clause.
pub fn clauses(text: &str, voice: &str) -> Result<Vec<Clause>, EspeakError> {
    let text = CString::new(text).map_err(|_| EspeakError::Nul)?;
    let voice_name = CString::new(voice).map_err(|_| EspeakError::Nul)?;
    let _espeak = ESPEAK.lock().map_err(|_| EspeakError::Poisoned)?;
    STARTED.get_or_init(start).clone()?;
    // SAFETY: espeak-ng is started and every call into it holds `ESPEAK`;
    // the C strings outlive the calls that read them.
    unsafe {
        if sys::espeak_SetVoiceByName(voice_name.as_ptr()) != sys::espeak_ERROR_EE_OK {
            return Err(EspeakError::UnknownVoice(voice.to_owned()));
        }
        let mut clauses = Vec::new();
        let mut position: *const c_char = text.as_ptr();
        while !position.is_null() {
            let (phonemes, terminator) = next_clause(&mut position)?;
            clauses.push(Clause {
                phonemes,
                terminator: Terminator::from_espeak(terminator),
                ends_sentence: terminator & CLAUSE_TYPE_SENTENCE == CLAUSE_TYPE_SENTENCE,
            });
        }
        Ok(clauses)
    }
}

/// `espeak_TextToPhonemesWithTerminator` (espeak-ng 1.52 `speech.c`) for
/// UTF-8 text: translates the clause at `position`, moves `position` past
/// it (null at the end) and returns its phonemes and terminator.
///
/// # Safety
/// espeak-ng is started, `ESPEAK` is held and `position` points into a
/// NUL-terminated string.
unsafe fn next_clause(position: &mut *const c_char) -> Result<(String, c_int), EspeakError> {
    let mut terminator: c_int = 0;
    // SAFETY: as the function's contract says; `p_decoder` and
    // `translator` are only touched under `ESPEAK`.
    unsafe {
        if p_decoder.is_null() {
            p_decoder = create_text_decoder();
        }
        // The encoding argument is only read for 8-bit text.
        let flags = sys::espeakCHARS_UTF8 as c_int;
        if text_decoder_decode_string_multibyte(p_decoder, position.cast(), 0, flags) != OK {
            return Err(EspeakError::Decode);
        }
        TranslateClauseWithTerminator(
            translator,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut terminator,
        );
        *position = text_decoder_get_buffer(p_decoder);
        let phonemes = GetTranslatedPhonemeString(PHONEMES_IPA);
        let phonemes = if phonemes.is_null() {
            String::new()
        } else {
            CStr::from_ptr(phonemes).to_string_lossy().into_owned()
        };
        Ok((phonemes, terminator))
    }
}

fn start() -> Result<(), EspeakError> {
    let data_dir = data_dir().and_then(|d| CString::new(d.to_string_lossy().as_bytes()).ok());
    let path = data_dir.as_ref().map_or(std::ptr::null(), |d| d.as_ptr());
    // SAFETY: called once, under `ESPEAK`; `path` outlives the call.
    let rate = unsafe {
        sys::espeak_Initialize(
            sys::espeak_AUDIO_OUTPUT_AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            path,
            sys::espeakINITIALIZE_DONT_EXIT as c_int,
        )
    };
    if rate <= 0 {
        return Err(EspeakError::Init(rate));
    }
    Ok(())
}

fn data_dir() -> Option<PathBuf> {
    let holds_data = |dir: &PathBuf| dir.join(DATA_DIR_NAME).is_dir();
    std::env::var_os(DATA_DIR_VARIABLE)
        .map(PathBuf::from)
        .filter(holds_data)
        .or_else(|| std::env::current_dir().ok().filter(holds_data))
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(PathBuf::from))
                .filter(holds_data)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_their_punctuation() {
        let clauses = clauses("Sure, I can help with that. Can you?", "en-us").unwrap();
        let ends: Vec<_> = clauses
            .iter()
            .map(|c| (c.terminator, c.ends_sentence))
            .collect();
        assert_eq!(
            ends,
            [
                (Terminator::Comma, false),
                (Terminator::Period, true),
                (Terminator::Question, true)
            ]
        );
        assert_eq!(clauses[0].phonemes, "ʃˈʊɹ");
    }

    #[test]
    fn unknown_voices_and_nul_are_refused() {
        assert!(matches!(
            clauses("hi", "no-such-voice"),
            Err(EspeakError::UnknownVoice(_))
        ));
        assert!(matches!(clauses("a\0b", "en-us"), Err(EspeakError::Nul)));
    }
}
