//! Whisper through whisper-rs (whisper.cpp), with a GGML model loaded once.

use std::path::{Path, PathBuf};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{
    Segment, SegmentDecoding, SegmentSink, SpeechToText, StreamUpdate, SttEngine, SttError,
    SttOptions, SttStream, Transcript, Word,
};

const ENGINE: SttEngine = SttEngine::Whisper;

/// How Whisper runs (`STT_*` settings, docs/voice.md).
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperSettings {
    pub threads: usize,
    pub use_gpu: bool,
    /// whisper.cpp's flash attention.
    pub flash_attn: bool,
    /// Encode only as much of the 30-second window as the audio fills,
    /// instead of the whole window padded with silence.
    pub fit_audio_ctx: bool,
    /// 1: greedy decoding; more: beam search with this many beams.
    pub beam_size: u32,
}

impl WhisperSettings {
    /// The service's defaults: greedy, the window fitted to the audio, no
    /// flash attention (on CPU it is slower here: docs/benchmarks.md).
    pub fn new(threads: usize) -> Self {
        Self {
            threads,
            use_gpu: false,
            flash_attn: false,
            fit_audio_ctx: true,
            beam_size: 1,
        }
    }
}

/// Encoder frames per second of audio (1,500 for the 30-second window).
const AUDIO_CTX_PER_SECOND: f64 = 50.0;
const FULL_AUDIO_CTX: i32 = 1500;
/// Frames encoded past the end of the audio.
const AUDIO_CTX_MARGIN: i32 = 64;
/// The fewest frames encoded: with a window of only a second or two the
/// decoder repeats short utterances ("Please open the door." twice, with
/// the second segment past the audio's end), seen with tiny.en.
const MIN_AUDIO_CTX: i32 = 512;

/// The encoder frames audio of `samples` samples needs.
fn fitted_audio_ctx(samples: usize) -> i32 {
    let secs = samples as f64 / f64::from(crate::audio::STT_SAMPLE_RATE);
    let frames = (secs * AUDIO_CTX_PER_SECOND).ceil() as i32 + AUDIO_CTX_MARGIN;
    frames.clamp(MIN_AUDIO_CTX, FULL_AUDIO_CTX)
}

pub struct WhisperStt {
    context: Option<WhisperContext>,
    model: PathBuf,
    settings: WhisperSettings,
    multilingual: bool,
    problem: Option<String>,
}

impl WhisperStt {
    pub fn load(model: &Path, settings: WhisperSettings) -> Self {
        // whisper.cpp prints to stderr by default; this sends it to the
        // `log` facade instead, which the service does not print.
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(settings.use_gpu);
        params.flash_attn(settings.flash_attn);
        let (context, problem) = if !model.is_file() {
            (None, Some(format!("model {} not found", model.display())))
        } else {
            match WhisperContext::new_with_params(model, params) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(format!("cannot load {}: {e}", model.display()))),
            }
        };
        let multilingual = context
            .as_ref()
            .is_some_and(WhisperContext::is_multilingual);
        if problem.is_none() {
            tracing::info!(model = %model.display(), multilingual, settings = ?settings, "whisper model loaded");
        }
        Self {
            context,
            model: model.to_path_buf(),
            settings,
            multilingual,
            problem,
        }
    }

    pub fn model_name(&self) -> String {
        self.model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl SpeechToText for WhisperStt {
    fn engine(&self) -> SttEngine {
        ENGINE
    }

    fn supports(&self, language: Option<&str>) -> bool {
        self.context.is_some() && (self.multilingual || language.is_none_or(|l| l == "en"))
    }

    fn supports_translation(&self) -> bool {
        self.context.is_some() && self.multilingual
    }

    fn languages(&self) -> Vec<String> {
        match (&self.context, self.multilingual) {
            (None, _) => Vec::new(),
            (Some(_), true) => vec!["*".to_owned()],
            (Some(_), false) => vec!["en".to_owned()],
        }
    }

    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError> {
        let context = self.context.as_ref().ok_or_else(|| SttError::Unavailable {
            engine: ENGINE,
            reason: self.problem.clone().unwrap_or_default(),
        })?;
        let failed = |e: whisper_rs::WhisperError| SttError::Failed {
            engine: ENGINE,
            reason: e.to_string(),
        };
        let mut state = context.create_state().map_err(failed)?;
        let strategy = match self.settings.beam_size {
            0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
            beams => SamplingStrategy::BeamSearch {
                beam_size: i32::try_from(beams).unwrap_or(1),
                patience: -1.0,
            },
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(i32::try_from(self.settings.threads.max(1)).unwrap_or(1));
        if self.settings.fit_audio_ctx {
            params.set_audio_ctx(fitted_audio_ctx(samples.len()));
        }
        let language = match (&options.language, self.multilingual) {
            (Some(l), _) => l.clone(),
            (None, true) => "auto".to_owned(),
            (None, false) => "en".to_owned(),
        };
        params.set_language(Some(&language));
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        params.set_translate(options.translate);
        params.set_token_timestamps(options.word_timestamps);
        if let Some(t) = options.temperature {
            params.set_temperature(t);
        }
        // As tokens, not `set_initial_prompt`: that one leaks its copy of
        // the text on every call.
        let prompt = match &options.prompt {
            Some(p) => prompt_tokens(context, p).map_err(failed)?,
            None => Vec::new(),
        };
        if !prompt.is_empty() {
            params.set_tokens(&prompt);
        }
        let listener = options.on_segment.as_ref();
        if let Some(sink) = listener {
            // SAFETY: the callbacks get `sink` back as their user data; it
            // outlives `state.full`, which is the only caller (whisper.cpp
            // calls them synchronously, on this thread or its workers
            // before `full` returns).
            unsafe {
                let data = std::ptr::from_ref(sink)
                    .cast_mut()
                    .cast::<std::ffi::c_void>();
                params.set_new_segment_callback(Some(on_new_segment));
                params.set_new_segment_callback_user_data(data);
                params.set_abort_callback(Some(on_abort_check));
                params.set_abort_callback_user_data(data);
            }
        }
        let outcome = state.full(params, samples);
        if listener.is_some_and(SegmentSink::gone) {
            return Err(SttError::Cancelled { engine: ENGINE });
        }
        outcome.map_err(failed)?;
        let detected = if language == "auto" {
            whisper_rs::get_lang_str(state.full_lang_id_from_state())
                .unwrap_or("auto")
                .to_owned()
        } else {
            language
        };
        let text_tokens_end = context.token_eot();
        let temperature = f64::from(options.temperature.unwrap_or(0.0));
        let mut segments = Vec::new();
        let mut words = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(failed)?.trim().to_owned();
            if text.is_empty() {
                continue;
            }
            // whisper.cpp times are in centiseconds.
            let (start, end) = (
                segment.start_timestamp() as f64 / 100.0,
                segment.end_timestamp() as f64 / 100.0,
            );
            let mut tokens = Vec::new();
            let mut timed = Vec::new();
            let mut logprob_sum = 0.0f64;
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                let id = token.token_id();
                // Ids from end-of-text up are special and timestamp tokens.
                if id >= text_tokens_end {
                    continue;
                }
                let data = token.token_data();
                tokens.push(id);
                logprob_sum += f64::from(data.plog);
                if options.word_timestamps {
                    timed.push(TimedToken {
                        bytes: token.to_bytes().map_err(failed)?.to_vec(),
                        start: data.t0 as f64 / 100.0,
                        end: data.t1 as f64 / 100.0,
                    });
                }
            }
            words.extend(words_from_tokens(&timed, start, end, words.last()));
            let count = tokens.len().max(1) as f64;
            segments.push(Segment {
                start,
                end,
                text,
                decoding: Some(SegmentDecoding {
                    tokens,
                    avg_logprob: logprob_sum / count,
                    no_speech_prob: f64::from(segment.no_speech_probability()),
                    temperature,
                }),
            });
        }
        Ok(Transcript {
            words,
            ..Transcript::from_segments(segments, detected)
        })
    }

    fn start_stream(&self, options: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError> {
        if self.context.is_none() {
            return Err(SttError::Unavailable {
                engine: ENGINE,
                reason: self.problem.clone().unwrap_or_default(),
            });
        }
        Ok(Box::new(WhisperStream {
            engine: self,
            options: options.clone(),
            buffer: Vec::new(),
            decoded_up_to: 0,
        }))
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}

/// Every language code multilingual Whisper knows (`en`, `zh`, ...), in
/// its order.
pub fn all_languages() -> Vec<String> {
    (0..=whisper_rs::get_lang_max_id())
        .filter_map(whisper_rs::get_lang_str)
        .map(str::to_owned)
        .collect()
}

/// A language's English name as Whisper knows it (`es` → `spanish`), as
/// OpenAI's `verbose_json` reports it.
pub fn language_name(code: &str) -> Option<&'static str> {
    (0..=whisper_rs::get_lang_max_id())
        .find(|&id| whisper_rs::get_lang_str(id) == Some(code))
        .and_then(whisper_rs::get_lang_str_full)
}

/// The prompt as tokens, its end kept: whisper.cpp reads at most half its
/// text context of prompt, the tokens nearest the audio.
fn prompt_tokens(
    context: &WhisperContext,
    prompt: &str,
) -> Result<Vec<whisper_rs::WhisperTokenId>, whisper_rs::WhisperError> {
    const MAX_PROMPT_TOKENS: usize = 224;
    // Byte-level tokens: never more tokens than bytes. whisper-rs trusts
    // the buffer to be large enough.
    let mut tokens = context.tokenize(prompt, prompt.len() + 16)?;
    let skip = tokens.len().saturating_sub(MAX_PROMPT_TOKENS);
    tokens.drain(..skip);
    Ok(tokens)
}

/// whisper.cpp's new-segment callback: the new segments to the sink.
unsafe extern "C" fn on_new_segment(
    _context: *mut whisper_rs::whisper_rs_sys::whisper_context,
    state: *mut whisper_rs::whisper_rs_sys::whisper_state,
    new: std::ffi::c_int,
    user_data: *mut std::ffi::c_void,
) {
    use whisper_rs::whisper_rs_sys as sys;
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: user data is the `SegmentSink` `transcribe` set, alive
        // for the whole of `state.full`; `state` is whisper.cpp's, valid
        // during the callback.
        unsafe {
            let sink = &*user_data.cast::<SegmentSink>();
            let total = sys::whisper_full_n_segments_from_state(state);
            for i in (total - new).max(0)..total {
                let raw = sys::whisper_full_get_segment_text_from_state(state, i);
                if raw.is_null() {
                    continue;
                }
                let text = std::ffi::CStr::from_ptr(raw).to_string_lossy();
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                sink.segment(&Segment::new(
                    sys::whisper_full_get_segment_t0_from_state(state, i) as f64 / 100.0,
                    sys::whisper_full_get_segment_t1_from_state(state, i) as f64 / 100.0,
                    text.to_owned(),
                ));
            }
        }
    }));
}

/// whisper.cpp's abort check: stop when the listener has gone.
unsafe extern "C" fn on_abort_check(user_data: *mut std::ffi::c_void) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `on_new_segment`.
        unsafe { (*user_data.cast::<SegmentSink>()).gone() }
    }))
    .unwrap_or(true)
}

/// A text token and its timing, in seconds.
struct TimedToken {
    bytes: Vec<u8>,
    start: f64,
    end: f64,
}

/// Words from a segment's text tokens: a token that begins with a space
/// begins a word. Timings are kept inside the segment and never go back
/// in time (`previous` is the last word of the segments before).
fn words_from_tokens(
    tokens: &[TimedToken],
    segment_start: f64,
    segment_end: f64,
    previous: Option<&Word>,
) -> Vec<Word> {
    let mut spans: Vec<(Vec<u8>, f64, f64)> = Vec::new();
    for t in tokens {
        match spans.last_mut() {
            Some(last) if !t.bytes.starts_with(b" ") => {
                last.0.extend_from_slice(&t.bytes);
                last.2 = t.end;
            }
            _ => spans.push((t.bytes.clone(), t.start, t.end)),
        }
    }
    let mut floor = previous.map_or(segment_start, |w| w.end.max(segment_start));
    let mut words = Vec::new();
    for (bytes, start, end) in spans {
        let word = String::from_utf8_lossy(&bytes).trim().to_owned();
        if word.is_empty() {
            continue;
        }
        let start = start.clamp(floor, segment_end.max(floor));
        let end = end.clamp(start, segment_end.max(start));
        floor = end;
        words.push(Word { word, start, end });
    }
    words
}

/// Whisper has no streaming mode: the stream keeps the utterance's audio
/// and re-decodes it every `PARTIAL_EVERY` of new audio for partial text,
/// and once more at the end for the final text. Audio past Whisper's
/// 30-second window is settled as a final result and a new window begins.
struct WhisperStream<'a> {
    engine: &'a WhisperStt,
    options: SttOptions,
    buffer: Vec<f32>,
    decoded_up_to: usize,
}

const PARTIAL_EVERY: usize = 2 * crate::audio::STT_SAMPLE_RATE as usize;
const WINDOW: usize = 28 * crate::audio::STT_SAMPLE_RATE as usize;

impl SttStream for WhisperStream<'_> {
    fn accept(&mut self, samples: &[i16]) -> Result<StreamUpdate, SttError> {
        self.buffer
            .extend(samples.iter().map(|s| f32::from(*s) / 32768.0));
        if self.buffer.len() >= WINDOW {
            return self.finish().map(StreamUpdate::Final);
        }
        if self.buffer.len() - self.decoded_up_to < PARTIAL_EVERY {
            return Ok(StreamUpdate::Nothing);
        }
        self.decoded_up_to = self.buffer.len();
        let t = self.engine.transcribe(&self.buffer, &self.options)?;
        Ok(StreamUpdate::Partial(t.text))
    }

    fn finish(&mut self) -> Result<Transcript, SttError> {
        let audio = std::mem::take(&mut self.buffer);
        self.decoded_up_to = 0;
        if !crate::audio::vad::has_speech(&audio, crate::audio::STT_SAMPLE_RATE, -45.0, 150) {
            return Ok(Transcript::empty(
                self.options.language.clone().unwrap_or_else(|| "en".into()),
            ));
        }
        self.engine.transcribe(&audio, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str, start: f64, end: f64) -> TimedToken {
        TimedToken {
            bytes: text.as_bytes().to_vec(),
            start,
            end,
        }
    }

    #[test]
    fn words_join_their_tokens_and_stay_in_order_inside_the_segment() {
        let tokens = [
            token(" Please", 0.1, 0.4),
            token(" call", 0.4, 0.6),
            token(" Kub", 0.6, 0.7),
            token("ern", 0.7, 0.8),
            token("etes", 0.8, 1.0),
            token(".", 1.0, 1.05),
            // Timings that go back, and past the segment's end.
            token(" now", 0.5, 9.0),
        ];
        let words = words_from_tokens(&tokens, 0.2, 2.0, None);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, ["Please", "call", "Kubernetes.", "now"]);
        assert_eq!((words[0].start, words[0].end), (0.2, 0.4));
        assert_eq!((words[2].start, words[2].end), (0.6, 1.05));
        assert_eq!((words[3].start, words[3].end), (1.05, 2.0));
        for pair in words.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{pair:?}");
        }
        // The next segment starts no earlier than the last word ended.
        let next = words_from_tokens(&[token(" again", 1.5, 2.5)], 1.9, 3.0, words.last());
        assert_eq!((next[0].start, next[0].end), (2.0, 2.5));
    }

    #[test]
    fn a_character_split_across_tokens_is_whole_in_its_word() {
        // "ñ" is two bytes; byte-level tokens may split it.
        let tokens = [
            TimedToken {
                bytes: vec![b' ', b'a', 0xc3],
                start: 0.0,
                end: 0.2,
            },
            TimedToken {
                bytes: vec![0xb1, b'o'],
                start: 0.2,
                end: 0.4,
            },
        ];
        assert_eq!(words_from_tokens(&tokens, 0.0, 1.0, None)[0].word, "año");
    }

    #[test]
    fn languages_are_named_as_openai_names_them() {
        assert_eq!(language_name("es"), Some("spanish"));
        assert_eq!(language_name("en"), Some("english"));
        assert_eq!(language_name("xx"), None);
    }

    #[test]
    fn the_encoded_window_follows_the_audio() {
        let rate = crate::audio::STT_SAMPLE_RATE as usize;
        assert_eq!(fitted_audio_ctx(rate), MIN_AUDIO_CTX);
        assert_eq!(fitted_audio_ctx(11 * rate + 1), 551 + AUDIO_CTX_MARGIN);
        assert_eq!(fitted_audio_ctx(29 * rate), FULL_AUDIO_CTX);
        assert_eq!(fitted_audio_ctx(40 * rate), FULL_AUDIO_CTX);
    }
}
