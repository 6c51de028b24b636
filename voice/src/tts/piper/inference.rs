//! One Piper voice model (VITS in ONNX) run through ONNX Runtime.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

/// The model's three scales (`inference` in a voice's config).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Scales {
    pub noise_scale: f32,
    pub length_scale: f32,
    #[serde(alias = "noise_w_scale")]
    pub noise_w: f32,
}

pub struct VoiceModel {
    session: Session,
    multi_speaker: bool,
}

impl VoiceModel {
    pub fn load(model: &Path, multi_speaker: bool) -> Result<Self, String> {
        let session = Session::builder()
            .and_then(|mut b| b.commit_from_file(model))
            .map_err(|e| format!("{}: {e}", model.display()))?;
        Ok(Self {
            session,
            multi_speaker,
        })
    }

    /// Samples in [-1, 1] at the voice's rate for one sentence's ids.
    pub fn infer(
        &mut self,
        ids: Vec<i64>,
        scales: Scales,
        speaker: i64,
    ) -> Result<Vec<f32>, String> {
        let error = |e: ort::Error| e.to_string();
        let length = ids.len();
        let input = Tensor::from_array(([1, length], ids.into_boxed_slice())).map_err(error)?;
        let lengths =
            Tensor::from_array(([1], vec![length as i64].into_boxed_slice())).map_err(error)?;
        let scales = Tensor::from_array((
            [3],
            vec![scales.noise_scale, scales.length_scale, scales.noise_w].into_boxed_slice(),
        ))
        .map_err(error)?;
        let outputs = if self.multi_speaker {
            let speaker =
                Tensor::from_array(([1], vec![speaker].into_boxed_slice())).map_err(error)?;
            self.session
                .run(ort::inputs![input, lengths, scales, speaker])
        } else {
            self.session.run(ort::inputs![input, lengths, scales])
        }
        .map_err(error)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(error)?;
        Ok(audio.to_vec())
    }
}
