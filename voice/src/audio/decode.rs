//! Uploaded audio in the containers and codecs clients send, to mono f32:
//! WAV (`decode_wav`), and through Symphonia (pure Rust) FLAC, MP3, Ogg
//! and WebM/Matroska with Vorbis, MP4/M4A and ADTS with AAC; Opus in Ogg
//! or WebM (what browsers record) is decoded by libopus. The container is
//! found from the bytes, never from a file name. Audio past `max_secs` is
//! refused as soon as the header says so, else as soon as decoding passes
//! it: a header's claims are never allocated for.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{Audio, AudioError, decode_wav};

/// Every container this decodes, for the error that says none matched.
pub const CONTAINERS: &str =
    "WAV, FLAC, MP3, Ogg (Opus, Vorbis), WebM/Matroska (Opus, Vorbis), MP4/M4A or ADTS (AAC)";
const OPUS_RATE: u32 = 48_000;

/// Decodes any supported upload to mono f32. Blocking (a minute of audio
/// takes tens of milliseconds): call it off the async threads.
pub fn decode(bytes: &[u8], max_secs: u32) -> Result<Audio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return decode_wav(bytes, max_secs);
    }
    // Symphonia's demuxers are not all panic-free on hostile input (its
    // Matroska reader panicked on a damaged WebM file here): a panic in
    // them is a refused upload, not a lost connection.
    std::panic::catch_unwind(|| decode_with_symphonia(bytes, max_secs)).unwrap_or_else(|_| {
        Err(AudioError::Corrupt(
            "the container is malformed (its demuxer gave up)".into(),
        ))
    })
}

fn decode_with_symphonia(bytes: &[u8], max_secs: u32) -> Result<Audio, AudioError> {
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|_| AudioError::NotAudio(format!("not a {CONTAINERS} file")))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NotAudio("the file has no audio track".into()))?
        .clone();
    let params = &track.codec_params;
    if params.codec == CODEC_TYPE_OPUS {
        let channels = params.channels.map_or(1, |c| c.count());
        return decode_opus(format.as_mut(), track.id, channels, max_secs);
    }
    let rate = params
        .sample_rate
        .ok_or_else(|| AudioError::Unsupported("the audio track has no sample rate".into()))?;
    check_rate(rate)?;
    if let Some(frames) = params.n_frames {
        let secs = frames as f64 / f64::from(rate);
        if secs > f64::from(max_secs) {
            return Err(AudioError::TooLong {
                secs,
                max: max_secs,
            });
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("the audio codec: {e}")))?;
    let max_frames = u64::from(max_secs) * u64::from(rate);
    let mut mono = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    while let Some(packet) = next_packet(format.as_mut(), track.id)? {
        let decoded = decoder
            .decode(&packet)
            .map_err(|e| AudioError::Corrupt(format!("a frame does not decode: {e}")))?;
        let spec = *decoded.spec();
        if spec.rate != rate {
            return Err(AudioError::Corrupt(
                "the sample rate changes mid-stream".into(),
            ));
        }
        let channels = spec.channels.count().max(1);
        let capacity = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            _ => buffer.insert(SampleBuffer::new(capacity, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        mix_into(&mut mono, buf.samples(), channels);
        if mono.len() as u64 > max_frames {
            return Err(too_long(mono.len(), rate, max_secs));
        }
    }
    finish(mono, rate, params.n_frames)
}

/// Opus packets, as Ogg and WebM demux them, through libopus at 48 kHz.
fn decode_opus(
    format: &mut dyn FormatReader,
    track: u32,
    channels: usize,
    max_secs: u32,
) -> Result<Audio, AudioError> {
    let layout = match channels {
        1 => opus::Channels::Mono,
        2 => opus::Channels::Stereo,
        n => {
            return Err(AudioError::Unsupported(format!(
                "Opus with {n} channels (mono and stereo are decoded)"
            )));
        }
    };
    let mut decoder = opus::Decoder::new(OPUS_RATE, layout)
        .map_err(|e| AudioError::Unsupported(format!("the Opus decoder: {e}")))?;
    let max_frames = u64::from(max_secs) * u64::from(OPUS_RATE);
    // 120 ms, the longest Opus packet.
    let mut pcm = vec![0f32; 5760 * channels];
    let mut mono = Vec::new();
    while let Some(packet) = next_packet(format, track)? {
        let frames = decoder
            .decode_float(&packet.data, &mut pcm, false)
            .map_err(|e| AudioError::Corrupt(format!("an Opus packet does not decode: {e}")))?;
        mix_into(&mut mono, &pcm[..frames * channels], channels);
        if mono.len() as u64 > max_frames {
            return Err(too_long(mono.len(), OPUS_RATE, max_secs));
        }
    }
    finish(mono, OPUS_RATE, None)
}

/// The track's next packet; `None` at the end of the stream.
fn next_packet(format: &mut dyn FormatReader, track: u32) -> Result<Option<Packet>, AudioError> {
    loop {
        match format.next_packet() {
            Ok(packet) if packet.track_id() == track => return Ok(Some(packet)),
            Ok(_) => {}
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(e) => return Err(AudioError::Corrupt(format!("the container: {e}"))),
        }
    }
}

fn mix_into(mono: &mut Vec<f32>, interleaved: &[f32], channels: usize) {
    mono.extend(interleaved.chunks(channels).map(|frame| {
        let sum: f32 = frame.iter().sum::<f32>() / channels as f32;
        if sum.is_finite() {
            sum.clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }));
}

/// The decoded audio; one that stops well short of the length its header
/// declares is truncated.
fn finish(mono: Vec<f32>, rate: u32, declared: Option<u64>) -> Result<Audio, AudioError> {
    if mono.is_empty() {
        return Err(AudioError::Corrupt("no audio could be decoded".into()));
    }
    if let Some(declared) = declared
        && (mono.len() as u64) < declared * 9 / 10
    {
        return Err(AudioError::Corrupt(format!(
            "truncated: {:.1} s of the {:.1} s the header declares",
            mono.len() as f64 / f64::from(rate),
            declared as f64 / f64::from(rate)
        )));
    }
    Ok(Audio {
        samples: mono,
        sample_rate: rate,
    })
}

fn too_long(frames: usize, rate: u32, max_secs: u32) -> AudioError {
    AudioError::TooLong {
        secs: frames as f64 / f64::from(rate),
        max: max_secs,
    }
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (1000..=384_000).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::Unsupported(format!(
            "a sample rate of {rate} Hz"
        )))
    }
}
