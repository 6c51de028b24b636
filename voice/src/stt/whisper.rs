//! Whisper through whisper-rs (whisper.cpp), with a GGML model loaded once.

use std::path::{Path, PathBuf};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{
    Segment, SpeechToText, StreamUpdate, SttEngine, SttError, SttOptions, SttStream, Transcript,
};

const ENGINE: SttEngine = SttEngine::Whisper;

pub struct WhisperStt {
    context: Option<WhisperContext>,
    model: PathBuf,
    threads: i32,
    multilingual: bool,
    problem: Option<String>,
}

impl WhisperStt {
    pub fn load(model: &Path, threads: usize, use_gpu: bool) -> Self {
        // whisper.cpp prints to stderr by default; this sends it to the
        // `log` facade instead, which the service does not print.
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(use_gpu);
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
            tracing::info!(model = %model.display(), multilingual, use_gpu, "whisper model loaded");
        }
        Self {
            context,
            model: model.to_path_buf(),
            threads: i32::try_from(threads.max(1)).unwrap_or(1),
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
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads);
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
