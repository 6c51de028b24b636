//! Whisper through whisper-rs (whisper.cpp), with a GGML model loaded once.

use std::path::{Path, PathBuf};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{
    Segment, SpeechToText, StreamUpdate, SttEngine, SttError, SttOptions, SttStream, Transcript,
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
        state.full(params, samples).map_err(failed)?;
        let detected = if language == "auto" {
            whisper_rs::get_lang_str(state.full_lang_id_from_state())
                .unwrap_or("auto")
                .to_owned()
        } else {
            language
        };
        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(failed)?.trim().to_owned();
            if text.is_empty() {
                continue;
            }
            segments.push(Segment {
                // whisper.cpp times are in centiseconds.
                start: segment.start_timestamp() as f64 / 100.0,
                end: segment.end_timestamp() as f64 / 100.0,
                text,
            });
        }
        Ok(Transcript::from_segments(segments, detected))
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
            return Ok(Transcript {
                text: String::new(),
                language: self.options.language.clone().unwrap_or_else(|| "en".into()),
                segments: Vec::new(),
            });
        }
        self.engine.transcribe(&audio, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoded_window_follows_the_audio() {
        let rate = crate::audio::STT_SAMPLE_RATE as usize;
        assert_eq!(fitted_audio_ctx(rate), MIN_AUDIO_CTX);
        assert_eq!(fitted_audio_ctx(11 * rate + 1), 551 + AUDIO_CTX_MARGIN);
        assert_eq!(fitted_audio_ctx(29 * rate), FULL_AUDIO_CTX);
        assert_eq!(fitted_audio_ctx(40 * rate), FULL_AUDIO_CTX);
    }
}
